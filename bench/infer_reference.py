#!/usr/bin/env python3
"""Inference timing of the PyTorch reference networks (plain torch or SpikingJelly), to put
beside `tks bench --inference`: the same networks, data and training warm-up.

Builds the network with `snn_reference.py`'s `build_model`, trains it for --train-steps steps
(AdamW, the TKS loss, as `snn_reference.py bench` does) so BatchNorm's running statistics and
the firing rates are those of a network that has started to learn, then times --steps forward
passes in eval mode under `torch.no_grad()` (3 warm-up passes first). Prints one JSON line.

    python bench/infer_reference.py --reference ../shared/reference/snn_reference.py \
        --model vggsnn --width 0.25 --T 4 --batch 16 --steps 20 --impl ref
"""
import argparse
import importlib.util
import json
import os
import resource
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="path of snn_reference.py")
    ap.add_argument("--model", choices=["vggsnn", "smallcnn"], default="vggsnn")
    ap.add_argument("--width", type=float, default=None)
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--train-steps", type=int, default=40)
    ap.add_argument("--impl", choices=["ref", "sj"], default="ref")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    spec = importlib.util.spec_from_file_location("snn_reference", args.reference)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    torch = ref.torch
    width = args.width if args.width is not None else (0.25 if args.model == "vggsnn" else 1.0)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    net = ref.build_model(args.impl, args.model, width)
    reset = None
    if args.impl == "sj":
        from spikingjelly.activation_based import functional as sjf
        reset = sjf.reset_net
    batches = [ref.random_batch(args.model, args.T, args.batch, gen) for _ in range(4)]

    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    for step in range(args.train_steps):
        x, y = batches[step % len(batches)]
        loss = ref.compute_loss("tks", net(x), y, temp=3.0, epoch=10, epochs=100, alpha=0.7)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if reset is not None:
            reset(net)

    net.eval()
    load0 = os.getloadavg()[0]
    times, cpu = [], 0.0
    with torch.no_grad():
        for step in range(3 + args.steps):
            x, _ = batches[step % len(batches)]
            t0, c0 = time.perf_counter(), time.process_time()
            net(x)
            if reset is not None:
                reset(net)
            dt = time.perf_counter() - t0
            if step >= 3:
                times.append(dt)
                cpu += time.process_time() - c0
    tot = sum(times)
    print(json.dumps({
        "impl": args.impl, "pass": "inference", "model": args.model, "width": width, "T": args.T,
        "batch": args.batch, "steps_timed": len(times), "train_steps_before": args.train_steps,
        "samples_per_s": round(args.batch * len(times) / tot, 3),
        "ms_per_step": round(1000.0 * tot / len(times), 3),
        "ms_per_step_median": round(1000.0 * sorted(times)[len(times) // 2], 3),
        "ms_per_step_min": round(1000.0 * min(times), 3),
        "cpu_ms_per_step": round(1000.0 * cpu / len(times), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "loadavg_1m_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }))


if __name__ == "__main__":
    main()
