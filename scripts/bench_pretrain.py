"""Benchmark one pretraining step (VTC+MLM+MFM) end to end: store -> DataLoader -> device -> fwd/bwd/AdamW.

Measures samples/s and model TFLOP/s of the `large` preset (24x1024, the original's shape) at batch 128 with
32 frames + 36 text tokens, in several ways in one run, so they compare as ratios on the same machine:

  modern   bf16 autocast + SDPA + fused AdamW + torch.compile  (the kit's default on a GPU)
  eager    bf16 autocast + SDPA + fused AdamW, no compile
  modern-ro  as modern, compiled with mode='reduce-overhead' (CUDA graphs)
  eager-nodata  as eager, one batch kept on the device (no loader, no copies): the input pipeline's cost
  fp32     the 2021 way: fp32 (TF32 matmuls) eager, unfused AdamW

Usage:  python scripts/bench_pretrain.py [--data DIR] [--modes modern,eager,fp32] [--steps 30]
        python scripts/bench_pretrain.py --tiny          # a quick CPU check of the same code path
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mmvsim.synth import generate
from mmvsim.store import open_store, load_tokenizer, VideoDataset, collate_videos
from mmvsim.model import VideoBert, model_config, flops_per_sample
from mmvsim.tasks import PretrainModel
from mmvsim.train import TrainConfig, build_optimizer, EpochSampler

PEAK_BF16 = 790e12   # measured dense bf16 matmul rate of one H200 here (8192^3 products)


class PadTags:
    """Collate with the tag multi-hot widened to `num_tags` columns (the real tag_list has 10,000 tags)."""
    def __init__(self, num_tags): self.num_tags = num_tags
    def __call__(self, items):
        b = collate_videos(items)
        t = b['tags']
        if t.shape[1] < self.num_tags:
            b['tags'] = torch.cat([t, torch.zeros(t.shape[0], self.num_tags - t.shape[1], dtype=t.dtype)], 1)
        return b


def loader(ds, batch, workers, num_tags, seed=0):
    return DataLoader(ds, batch_size=batch, sampler=EpochSampler(len(ds), seed), collate_fn=PadTags(num_tags),
                      num_workers=workers, pin_memory=torch.cuda.is_available(), drop_last=True,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers else None)


def run_mode(mode, ds, store, args, device):
    """Time `args.steps` optimizer steps after `args.warmup` untimed ones; returns the figures."""
    torch.manual_seed(0)
    cfg = model_config(args.size, vocab_size=max(args.vocab, store.vocab_size), max_frames=args.frames)
    specials = sorted({store.pad_id, store.unk_id, store.cls_id, store.sep_id, store.mask_id})
    pm = PretrainModel(VideoBert(cfg), ('vtc', 'mlm', 'mfm'), num_tags=args.num_tags, special_ids=specials,
                       mask_id=store.mask_id).to(device)
    tc = TrainConfig(lr_bert=5e-5, lr_new=5e-4)
    if mode == 'fp32':
        opt = torch.optim.AdamW(pm.param_groups(tc.lr_bert, tc.lr_new, tc.weight_decay), lr=tc.lr_new)
    else:
        opt = build_optimizer(pm, tc)
    compile_mode = 'reduce-overhead' if mode == 'modern-ro' else None
    fwd = torch.compile(pm, mode=compile_mode) if mode.startswith('modern') else pm
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode != 'fp32' and device.type == 'cuda')
    dl = loader(ds, args.batch, args.workers, args.num_tags)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

    def step(batch):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with amp: out = fwd(batch)
        out['loss'].backward()
        torch.nn.utils.clip_grad_norm_(pm.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out

    it, t_compile = iter(dl), time.perf_counter()
    fixed = {k: v.to(device) for k, v in next(it).items()} if mode == 'eager-nodata' else None
    def next_batch():
        nonlocal it
        if fixed is not None: return fixed
        try: return next(it)
        except StopIteration:
            it = iter(dl)
            return next(it)
    for _ in range(args.warmup): out = step(next_batch())
    sync()
    warm_s = time.perf_counter() - t_compile
    t0 = time.perf_counter()
    for _ in range(args.steps): out = step(next_batch())
    sync()
    dt = time.perf_counter() - t0
    if args.profile and mode == 'eager' and device.type == 'cuda':
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(5): step(next_batch())
            sync()
        ev = prof.key_averages()
        print(ev.table(sort_by='cuda_time_total', row_limit=25), flush=True)
        kernels = sum(getattr(e, 'self_device_time_total', 0) for e in ev)
        print(f'profile: GPU kernel time {kernels / 5 / 1000:.1f} ms per step '
              f'(wall {1000 * dt / args.steps:.1f} ms)', flush=True)
    sps = args.steps * args.batch / dt
    fl = flops_per_sample(cfg, args.frames + args.text)
    res = dict(mode=mode, samples_per_s=round(sps, 1), step_ms=round(1000 * dt / args.steps, 1),
               tflops=round(sps * fl / 1e12, 1), warmup_s=round(warm_s, 1),
               loss={k: round(float(v.detach()), 3) for k, v in out.items()},
               max_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 1) if device.type == 'cuda' else None)
    if device.type == 'cuda': res['pct_of_peak'] = round(100 * sps * fl / PEAK_BF16, 1)
    pm = opt = fwd = dl = None   # free them before the next mode: rebound, not deleted, as step and next_batch use them
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return res


def data_rate(ds, args):
    """Videos/s the DataLoader alone delivers (the ceiling the input pipeline puts on training)."""
    dl = loader(ds, args.batch, args.workers, args.num_tags, seed=1)
    it = iter(dl)
    next(it)
    t0, n = time.perf_counter(), 0
    for _ in range(min(30, len(dl) - 1)):
        b = next(it)
        n += len(b['index'])
    return round(n / (time.perf_counter() - t0), 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', help='a competition directory (default: generate one in a temp dir)')
    ap.add_argument('--modes', default='eager,modern,fp32')
    ap.add_argument('--size', default='large')
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--frames', type=int, default=32)
    ap.add_argument('--text', type=int, default=36)
    ap.add_argument('--vocab', type=int, default=21128, help='model vocabulary (the Chinese BERT one)')
    ap.add_argument('--num-tags', type=int, default=10000)
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--warmup', type=int, default=8)
    ap.add_argument('--workers', type=int, default=min(12, os.cpu_count() or 1))
    ap.add_argument('--videos', type=int, default=3000, help='pointwise videos to generate when --data is not given')
    ap.add_argument('--tiny', action='store_true', help='CPU check: tiny model, small batch, few steps')
    ap.add_argument('--out', help='also write the results as JSON here')
    ap.add_argument('--profile', action='store_true', help='print a CUDA kernel profile of the eager step')
    args = ap.parse_args()
    if args.tiny:
        args.size, args.batch, args.steps, args.warmup, args.workers, args.videos = 'tiny', 8, 3, 1, 1, 200
        args.vocab, args.num_tags = 0, 100
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tmp = Path(tempfile.mkdtemp())
    data = Path(args.data) if args.data else tmp/'data'
    t0 = time.perf_counter()
    if not args.data:
        generate(data, 'demo', progress=False, shards=1, videos_per_shard=args.videos, pair_queries=20, test_queries=5)
    tok = load_tokenizer(data/'vocab.txt')
    store = open_store(data, tmp/'store', tok, progress=False)
    ds = VideoDataset(store, ['pointwise', 'pairwise'], args.frames, args.text)
    args.num_tags = max(args.num_tags, store.num_tags)
    print(f'data ready in {time.perf_counter() - t0:.0f}s: {len(ds)} videos; device {device} '
          f'{torch.cuda.get_device_name() if device.type == "cuda" else ""}; torch {torch.__version__}', flush=True)
    results = dict(device=torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu', torch=torch.__version__,
                   size=args.size, batch=args.batch, seq=args.frames + args.text, workers=args.workers,
                   loader_videos_per_s=data_rate(ds, args), runs=[])
    print(f"loader alone: {results['loader_videos_per_s']} videos/s with {args.workers} workers", flush=True)
    for mode in args.modes.split(','):
        try: r = run_mode(mode, ds, store, args, device)
        except Exception as e: r = dict(mode=mode, error=f'{type(e).__name__}: {e}'[:2000])
        results['runs'].append(r)
        print(json.dumps(r), flush=True)
    base = {r['mode']: r['samples_per_s'] for r in results['runs'] if 'samples_per_s' in r}
    if 'fp32' in base:
        for m, v in base.items(): print(f'{m:>7}: {v:8.1f} samples/s  ({v / base["fp32"]:.2f}x fp32)')
    if args.out: Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
