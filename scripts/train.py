#!/usr/bin/env python3
"""Train a feed-forward style-transfer generator (Johnson et al. 2016 family).

Losses: content (VGG16 relu2_2 by default), Gram style (relu1_2, relu2_2, relu3_3, relu4_3),
total variation, Eilertsen et al. 2019 single-frame temporal regularisation (on by default;
--temporal-weight 0 turns it off) and an optional adversarial loss with a small patch
discriminator on style crops (--adv-weight > 0; off by default).

Data (needs the developers' shared folder ../shared/data; fails clearly when it is missing):
trains on bsds500 train_* + val_* and sun80, holds out bsds500 test_*; style paintings from
../shared/data/styles. Random crops, horizontal flips, scale jitter, fixed seed.

Resumable: the run directory (default .cache/train/<style>-<width>) holds ckpt.pt (written every
--ckpt-every steps), log.jsonl (losses), config.json, previews/. Re-running the same command
continues from the checkpoint. The same command runs on CPU or CUDA (--device auto).

  python scripts/train.py --style starry_night --width fast --steps 1500 --crop 128
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stylize_train.data import REPO_ROOT, CropSampler, content_files, load_rgb, load_style, shared_data_dir  # noqa: E402

# Settings that must match to resume a run.
RUN_KEYS = ["style", "width", "n_res", "crop", "batch", "style_size", "content_layer", "content_weight",
            "style_weight", "tv_weight", "temporal_weight", "adv_weight", "lr", "seed"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--style", required=True, help="style name: a file <name>.jpg in ../shared/data/styles")
    ap.add_argument("--width", choices=["fast", "quality"], default="fast")
    ap.add_argument("--n-res", type=int, default=5, help="residual blocks")
    ap.add_argument("--steps", type=int, default=2000, help="total optimisation steps (resume continues to it)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=192, help="training crop size (multiple of 4)")
    ap.add_argument("--style-size", type=int, default=384, help="long side of the style image for its Grams")
    ap.add_argument("--content-layer", choices=["relu2_2", "relu3_3"], default="relu2_2")
    ap.add_argument("--content-weight", type=float, default=1.0)
    ap.add_argument("--style-weight", type=float, default=1.0)
    ap.add_argument("--tv-weight", type=float, default=10.0)
    ap.add_argument("--temporal-weight", type=float, default=30.0,
                    help="Eilertsen single-frame regulariser on 0-255 pixels; 0 disables it")
    ap.add_argument("--temporal-shift", type=float, default=0.02, help="max shift, fraction of the crop")
    ap.add_argument("--temporal-zoom", type=float, default=0.03, help="max zoom in/out (fraction)")
    ap.add_argument("--temporal-rot", type=float, default=1.0, help="max rotation in degrees")
    ap.add_argument("--temporal-noise", type=float, default=3.0, help="std of Gaussian noise (0-255 scale)")
    ap.add_argument("--adv-weight", type=float, default=0.0, help="adversarial loss weight; 0 = off (default)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads for torch; 0 = adaptive on CPU: every 100 steps time a few steps with 1 "
                         "thread and with all cores and keep the faster (helps on a shared, busy machine)")
    ap.add_argument("--run-dir", help="default: .cache/train/<style>-<width>[-notemporal]")
    ap.add_argument("--data-dir", help="shared data dir (default ../shared/data from the repo root)")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--snapshot-every", type=int, default=500,
                    help="also keep the generator weights at these steps (snapshots/, for comparisons)")
    ap.add_argument("--preview-every", type=int, default=250)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop (after a checkpoint) after this long; 0 = no limit")
    ap.add_argument("--probe", type=int, default=0, help="only time N steps, print the loss terms, save nothing")
    return ap.parse_args(argv)


def pick_device(name: str):
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def atomic_save(obj, path: Path):
    import torch
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def preview(gen, imgs, path: Path):
    """Save original | stylised rows for a few held-out photos (PNG)."""
    import numpy as np
    import torch
    from PIL import Image
    rows = []
    was = gen.training
    gen.eval()
    gen.clamp_output = True
    with torch.no_grad():
        for x in imgs:
            y = gen(x)
            pair = torch.cat([x, y], 3)[0].permute(1, 2, 0).clamp(0, 255).byte().cpu().numpy()
            rows.append(pair)
    gen.clamp_output = False
    gen.train(was)
    w = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0))) for r in rows]
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.crop % 4:
        raise SystemExit("error: --crop must be a multiple of 4")
    data = shared_data_dir(args.data_dir)

    import numpy as np
    import torch

    from stylize_train import losses as L
    from stylize_train.models import Generator, PatchDiscriminator, count_params
    from stylize_train.vgg import LAYER_NAMES, load_vgg

    if args.threads:
        torch.set_num_threads(args.threads)
    max_threads = torch.get_num_threads()
    adaptive = not args.threads and max_threads > 1
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    suffix = "" if args.temporal_weight > 0 else "-notemporal"
    run = Path(args.run_dir) if args.run_dir else REPO_ROOT / ".cache" / "train" / f"{args.style}-{args.width}{suffix}"
    cfg = {k: getattr(args, k) for k in vars(args)}
    cfg["command"] = "python scripts/train.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    vgg = load_vgg(data, device)
    gen = Generator(args.width, args.n_res).to(device)
    opt = torch.optim.Adam(gen.parameters(), lr=args.lr)
    disc = dopt = None
    if args.adv_weight > 0:
        disc = PatchDiscriminator().to(device)
        dopt = torch.optim.Adam(disc.parameters(), lr=args.lr * 0.5, betas=(0.5, 0.999))

    sampler = CropSampler(content_files(data, "train"), args.crop, args.seed)
    style = load_style(data, args.style, args.style_size).to(device)
    with torch.no_grad():
        style_grams = {k: L.gram(v) for k, v in vgg(style, LAYER_NAMES).items()}
    style_d = style  # real samples for the discriminator: random crops of the painting
    if disc is not None and min(style.shape[2:]) < args.crop:
        style_d = torch.nn.functional.interpolate(style, scale_factor=args.crop / min(style.shape[2:]) + 1e-3,
                                                  mode="bilinear", align_corners=False)
    trng = torch.Generator().manual_seed(args.seed + 1)  # temporal transforms / noise
    arng = np.random.default_rng(args.seed + 2)  # style crops for the discriminator

    step, wall = 0, 0.0
    ckpt_path = run / "ckpt.pt"
    if not args.probe:
        run.mkdir(parents=True, exist_ok=True)
        (run / "previews").mkdir(exist_ok=True)
        if ckpt_path.exists():
            ck = torch.load(ckpt_path, map_location=device, weights_only=False)
            old = ck["config"]
            diff = {k: (old.get(k), cfg[k]) for k in RUN_KEYS if old.get(k) != cfg[k]}
            if diff:
                raise SystemExit(f"error: {run} holds a run with other settings {diff}; use another --run-dir")
            gen.load_state_dict(ck["gen"])
            opt.load_state_dict(ck["opt"])
            if disc is not None:
                disc.load_state_dict(ck["disc"])
                dopt.load_state_dict(ck["dopt"])
            sampler.set_state(ck["sampler"])
            trng.set_state(ck["trng"])
            arng.bit_generator.state = ck["arng"]
            torch.set_rng_state(ck["torch_rng"])
            step, wall = ck["step"], ck["wall"]
            cfg["commands"] = old.get("commands", [old["command"]]) + [cfg["command"]]
            print(f"resumed {run} at step {step} ({wall / 60:.1f} min so far)", flush=True)
        else:
            cfg["commands"] = [cfg["command"]]
        (run / "config.json").write_text(json.dumps(cfg, indent=2))

    print(f"device {device}, threads {torch.get_num_threads()}, generator {args.width}: "
          f"{count_params(gen):,} parameters, {len(sampler.images)} training photos, crop {args.crop}, "
          f"batch {args.batch}, style {args.style} ({tuple(style.shape[2:])})", flush=True)

    tests = [load_rgb(f, 256) for f in content_files(data, "test")[:3]]
    tests = [t[:, : t.shape[1] // 4 * 4, : t.shape[2] // 4 * 4].float()[None].to(device) for t in tests]

    def save_ckpt():
        atomic_save({"gen": gen.state_dict(), "opt": opt.state_dict(),
                     "disc": disc.state_dict() if disc else None, "dopt": dopt.state_dict() if dopt else None,
                     "sampler": sampler.state(), "trng": trng.get_state(), "arng": arng.bit_generator.state,
                     "torch_rng": torch.get_rng_state(), "step": step, "wall": wall, "config": cfg}, ckpt_path)

    log = open(run / "log.jsonl", "a") if not args.probe else None
    gen.train()
    t_start = time.time()
    acc, n_acc = {}, 0
    target = args.probe or args.steps
    trial_times, recent = {}, []
    while step < target:
        phase = step % 100 if adaptive and device.type == "cpu" else 100
        if phase < 100:
            if phase < 4:
                torch.set_num_threads(1)
            elif phase < 8:
                torch.set_num_threads(max_threads)
            elif phase == 8 and trial_times:
                best = min(trial_times, key=lambda k: sorted(trial_times[k])[len(trial_times[k]) // 2])
                torch.set_num_threads(best)
                trial_times, recent = {}, []
        t0 = time.time()
        x = sampler.sample(args.batch).to(device)
        y = gen(x)
        with torch.no_grad():
            fx = vgg(x, [args.content_layer])[args.content_layer]
        fy = vgg(y, LAYER_NAMES)
        terms = {
            "content": L.content_loss(fy[args.content_layer], fx) * args.content_weight,
            "style": L.style_loss(fy, style_grams) * args.style_weight,
            "tv": L.tv_loss(y) * args.tv_weight,
        }
        if args.temporal_weight > 0:
            terms["temporal"] = L.temporal_loss(gen, x, y, trng, args.temporal_noise, args.temporal_shift,
                                                args.temporal_zoom, args.temporal_rot) * args.temporal_weight
        if disc is not None:
            fake_logits = disc(y)
            terms["adv"] = -fake_logits.mean() * args.adv_weight  # hinge generator loss
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if disc is not None:  # hinge loss on random style crops vs generated crops
            c = args.crop
            reals = []
            for _ in range(args.batch):
                yy = arng.integers(0, style_d.shape[2] - c + 1)
                xx = arng.integers(0, style_d.shape[3] - c + 1)
                reals.append(style_d[:, :, yy:yy + c, xx:xx + c])
            real = torch.cat(reals)
            d_loss = torch.relu(1 - disc(real)).mean() + torch.relu(1 + disc(y.detach())).mean()
            dopt.zero_grad(set_to_none=True)
            d_loss.backward()
            dopt.step()
            terms["disc"] = d_loss.detach()
        step += 1
        dt = time.time() - t0
        wall += dt
        if phase < 8:
            trial_times.setdefault(torch.get_num_threads(), []).append(dt)
        elif phase < 100:
            recent.append(dt)
            del recent[:-10]
            med = sorted(recent)[len(recent) // 2]
            if torch.get_num_threads() > 1 and len(recent) >= 5 and dt > 3 * med:
                torch.set_num_threads(1)  # another process took a core: 2 threads would stall each other
                recent.clear()
        for k, v in terms.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc["total"] = acc.get("total", 0.0) + float(loss.detach())
        n_acc += 1
        if args.probe:
            print(f"probe step {step}: {dt:.2f} s  " + "  ".join(f"{k} {float(v):.4g}" for k, v in terms.items()),
                  flush=True)
            continue
        if step % args.log_every == 0 or step == target:
            rec = {"step": step, "sec_per_step": round(dt, 3), "threads": torch.get_num_threads(),
                   "wall_min": round(wall / 60, 2)}
            rec.update({k: round(v / n_acc, 6) for k, v in acc.items()})
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            acc, n_acc = {}, 0
        if step % args.preview_every == 0 or step == target:
            preview(gen, tests, run / "previews" / f"step{step:06d}.png")
        if step % args.ckpt_every == 0 or step == target:
            save_ckpt()
        if args.snapshot_every and step % args.snapshot_every == 0:
            (run / "snapshots").mkdir(exist_ok=True)
            atomic_save({"gen": gen.state_dict(), "config": cfg, "step": step, "wall": wall},
                        run / "snapshots" / f"step{step:06d}.pt")
        if args.max_minutes and (time.time() - t_start) > args.max_minutes * 60:
            save_ckpt()
            print(f"stopping after {args.max_minutes} min at step {step}; re-run the same command to resume")
            return 3
    if not args.probe:
        save_ckpt()
        atomic_save({"gen": gen.state_dict(), "config": cfg, "step": step, "wall": wall}, run / "final.pt")
        print(f"done: {run / 'final.pt'} after {step} steps, {wall / 60:.1f} min of training", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
