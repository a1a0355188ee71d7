#!/usr/bin/env python3
"""Reference data for tests/interop/test_interop.cpp, made by implementations that are not ours.

  python scripts/make-ddpm-reference.py PATH/TO/pytorch_diffusion/model.py [OUT_DIR]

model.py is pesser/pytorch_diffusion's port of the original DDPM network (not part of
libddpm; fetch it yourself). With diffusers installed, also writes a UNet2DModel folder.
Needs torch (CPU is enough) and safetensors. Writes into OUT_DIR (tests/data/ddpm_ref):
  original/model.ckpt        torch.save state dict of a small random original-layout Model
  original/io.safetensors    x [2,3,16,16], t [2] (int64), eps = Model(x, t) (float32, as the original)
  original/io.pt, io-legacy.pt   the same three tensors via torch.save (zip and legacy formats)
  diffusers/config.json, diffusers/diffusion_pytorch_model.safetensors,
  diffusers/scheduler/scheduler_config.json, diffusers/io.safetensors   the same for UNet2DModel
  shapes/*.json              {name: shape} of the full-size models (CIFAR-10 32, 256x256) in both
                             layouts + the parameter count, to test the converter on random weights
"""
import importlib.util
import json
import os
import sys

import torch
from safetensors.torch import save_file


def load_module(path):
    spec = importlib.util.spec_from_file_location("ddpm_original_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def perturb(model, gen):
    # Default inits leave GroupNorm at weight 1 / bias 0: perturb every tensor so that a
    # mis-mapped parameter changes the output.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def shapes(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def io_data(gen):
    x = torch.randn(2, 3, 16, 16, generator=gen)
    t = torch.tensor([3, 817], dtype=torch.int64)
    return x, t


def main():
    model_py = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/data/ddpm_ref"
    torch.manual_seed(0)
    m = load_module(model_py)

    # ---- original layout: small random model, 2 levels, attention at 8x8, shortcut convs
    gen = torch.Generator().manual_seed(1234)
    small = dict(ch=32, out_ch=3, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,),
                 dropout=0.0, resamp_with_conv=True, in_channels=3, resolution=16)
    net = m.Model(**small).eval()
    perturb(net, gen)
    os.makedirs(f"{out}/original", exist_ok=True)
    torch.save(net.state_dict(), f"{out}/original/model.ckpt")
    x, t = io_data(torch.Generator().manual_seed(99))
    with torch.no_grad():
        eps = net(x.float(), t)
    io = {"x": x.float().contiguous(), "t": t, "eps": eps.float().contiguous()}
    save_file(io, f"{out}/original/io.safetensors")
    # The same tensors through torch.save, zip and legacy (pre-1.6) formats, for the reader.
    torch.save(io, f"{out}/original/io.pt")
    torch.save(io, f"{out}/original/io-legacy.pt", _use_new_zipfile_serialization=False)
    print("original small:", sum(p.numel() for p in net.parameters()), "parameters")

    # ---- full-size original architectures: names and shapes only
    full = {
        "original-cifar10-32": dict(ch=128, out_ch=3, ch_mult=(1, 2, 2, 2), num_res_blocks=2,
                                    attn_resolutions=(16,), dropout=0.1, resamp_with_conv=True,
                                    in_channels=3, resolution=32),
        "original-256": dict(ch=128, out_ch=3, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
                             attn_resolutions=(16,), dropout=0.0, resamp_with_conv=True,
                             in_channels=3, resolution=256),
    }
    for name, cfg in full.items():
        net_full = m.Model(**cfg)
        n = sum(p.numel() for p in net_full.parameters())
        write_json(f"{out}/shapes/{name}.json", {"parameters": n, "shapes": shapes(net_full)})
        print(name, n, "parameters")

    try:
        from diffusers import DDPMScheduler, UNet2DModel
    except ImportError:
        print("diffusers not installed: no diffusers reference")
        return

    # ---- diffusers UNet2DModel in the DDPM configuration, small and random
    gen = torch.Generator().manual_seed(4321)
    dcfg = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 64),
                down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                attention_head_dim=None, norm_eps=1e-6, norm_num_groups=32, freq_shift=1,
                flip_sin_to_cos=False, downsample_padding=0, dropout=0.0)
    unet = UNet2DModel(**dcfg).eval()
    perturb(unet, gen)
    unet.save_pretrained(f"{out}/diffusers", safe_serialization=True)
    DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  variance_type="fixed_large", clip_sample=True).save_config(f"{out}/diffusers/scheduler")
    with torch.no_grad():
        eps = unet(x.float(), t).sample
    save_file({"x": x.float().contiguous(), "t": t, "eps": eps.float().contiguous()},
              f"{out}/diffusers/io.safetensors")
    print("diffusers small:", sum(p.numel() for p in unet.parameters()), "parameters")

    fulld = {
        "diffusers-cifar10-32": dict(sample_size=32, block_out_channels=(128, 256, 256, 256),
                                     down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                                     up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D")),
        "diffusers-256": dict(sample_size=256, block_out_channels=(128, 128, 256, 256, 512, 512),
                              down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                              up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4),
    }
    for name, cfg in fulld.items():
        u = UNet2DModel(in_channels=3, out_channels=3, layers_per_block=2, attention_head_dim=None,
                        norm_eps=1e-6, norm_num_groups=32, freq_shift=1, flip_sin_to_cos=False,
                        downsample_padding=0, **cfg)
        n = sum(p.numel() for p in u.parameters())
        write_json(f"{out}/shapes/{name}.json", {"parameters": n, "shapes": shapes(u), "config": dict(u.config)})
        print(name, n, "parameters")


if __name__ == "__main__":
    main()
