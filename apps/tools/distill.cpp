// ddpm-distill: progressive distillation of a libddpm checkpoint (Salimans & Ho 2022; see
// ddpm/train/distill.hpp): ddpm-train's command line and run loop (train_tool.hpp) with the
// distillation objective, so runs, checkpoints, --resume, --nproc-per-node and --eval-every are
// those of ddpm-train.
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ddpm/pipeline/checkpoint.hpp"
#include "ddpm/train/distill.hpp"
#include "ddpm/train/trainer.hpp"
#include "tools/tools.hpp"
#include "tools/train_tool.hpp"

namespace ddpm::cli {

int distill_main(int argc, char** argv) {
  TrainTool tool;
  tool.name = "ddpm-distill";
  tool.distill = true;
  tool.description =
      "ddpm-distill: progressive distillation (Salimans & Ho 2022): a student that samples in N/2 DDIM steps what "
      "its teacher does in N, N halving every round (--start-steps 64 --final-steps 4 --steps-per-round K)";
  tool.footer =
      "The teacher is any libddpm checkpoint (epsilon, x0 or v; a class-conditional one is distilled guided at "
      "--guidance w). The student starts from the teacher's weights and learns on the teacher's data; its "
      "checkpoints record that it is distilled and sample with ddim at its steps by default.\n"
      "Example: ddpm-distill --teacher runs/fmnist --run-dir runs/fmnist-fast --config configs/fashion-mnist-28-fast.toml";
  tool.fresh_config = [](const Config& parsed, c10::Device) {
    const CheckpointReader teacher(parsed.distill.teacher);
    const Config teacher_config = teacher.config();
    Config student = student_config(teacher_config, parsed);
    if (!student.distill.student_init.empty()) {
      // Before anything starts: a checkpoint of another shape is bad input, named here.
      UNet probe(student.model);
      const CheckpointReader init(student.distill.student_init);
      if (init.has_ema())
        init.load_ema(*probe);
      else
        init.load_model(*probe);
    }
    const DistillConfig& d = student.distill;
    spdlog::info("teacher {} (step {}, prediction {}{}); {} rounds of {} steps: {} -> {} DDIM steps{}", teacher.path(),
                 teacher.step(), to_string(teacher_config.train.prediction),
                 teacher_config.train.prediction == student.train.prediction
                     ? std::string()
                     : "; the student predicts " + to_string(student.train.prediction),
                 d.rounds(), d.steps_per_round, d.start_steps, d.final_steps,
                 student.model.conditional() ? fmt::format(", guided with w = {}", d.guidance.weight)
                                             : std::string());
    return student;
  };
  tool.objective = [](const Config& config, c10::Device device, bool resuming) -> std::shared_ptr<TrainingObjective> {
    if (resuming) return std::make_shared<DistillObjective>(config, UNet{nullptr}, config, device);
    const LoadedModel teacher = load_model_for_sampling(config.distill.teacher, device, /*use_ema=*/true);
    return std::make_shared<DistillObjective>(config, teacher.model, teacher.config, device);
  };
  tool.fresh_start = [](Trainer& trainer) {
    const DistillConfig& d = trainer.config().distill;
    trainer.init_weights(d.student_init.empty() ? d.teacher : d.student_init);
  };
  return run_train_tool(argc, argv, tool);
}

}  // namespace ddpm::cli
