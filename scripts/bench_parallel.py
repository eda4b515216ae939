"""How many training processes, with how many torch threads each, finish a grid's runs fastest on this machine.

Runs the same short pretraining run (the `tiny` model, VTC+MLM+MFM, a fixed number of steps) as separate processes
in three arrangements and reports each arrangement's throughput in the same run: the runs one after another with
every core's thread, one process per core side by side with one thread each, and one process per core side by side
with every core's thread each (oversubscribed). The ablation runner's default follows the fastest.

    python scripts/bench_parallel.py --data data/demo --steps 40
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

RUN = """
import sys, time, torch
from mmvsim.stages.pretrain import PretrainConfig, pretrain
t0 = time.perf_counter()
s = pretrain(PretrainConfig(data_dir=sys.argv[1], run_dir=sys.argv[2], max_steps=int(sys.argv[3]), batch_size=32,
                            plot=False, save_every=10**6), progress=False)
print(torch.get_num_threads(), s['steps'] * 32, time.perf_counter() - t0)
"""


def launch(data, run, steps, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen([sys.executable, '-c', RUN, data, run, str(steps)], env=env, stdout=subprocess.PIPE,
                            text=True)


def arrangement(data, steps, procs, threads, parallel, root):
    """Wall time and samples/s of `procs` runs of `threads` threads each, side by side or one after another."""
    t0, outs = time.perf_counter(), []
    runs = [str(root/f'{procs}x{threads}-{parallel}-{k}') for k in range(procs)]
    if parallel:
        ps = [launch(data, r, steps, threads) for r in runs]
        outs = [p.communicate()[0] for p in ps]
    else:
        for r in runs: outs.append(launch(data, r, steps, threads).communicate()[0])
    wall = time.perf_counter() - t0
    samples = sum(int(o.split()[1]) for o in outs)
    return dict(processes=procs, threads=threads, parallel=parallel, wall_s=round(wall, 1),
                samples_per_s=round(samples / wall, 1), threads_seen=[int(o.split()[0]) for o in outs])


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default='data/demo')
    p.add_argument('--steps', type=int, default=40)
    p.add_argument('--out', default='benchmarks/parallel.json')
    a = p.parse_args()
    cores = os.cpu_count()
    from mmvsim.data.store import load_tokenizer, open_store
    open_store(a.data, a.data + '_store', load_tokenizer(Path(a.data)/'vocab.txt'))          # built once, before timing
    root = Path(tempfile.mkdtemp())
    res = [arrangement(a.data, a.steps, cores, cores, False, root),            # one after another, all threads each
           arrangement(a.data, a.steps, cores, 1, True, root),                 # one per core side by side
           arrangement(a.data, a.steps, cores, cores, True, root)]             # side by side, oversubscribed
    base = res[0]['samples_per_s']
    for r in res: r['vs_sequential'] = round(r['samples_per_s'] / base, 2)
    print(f'{cores} cores, {cores} runs of {a.steps} steps (tiny model, batch 32, VTC+MLM+MFM)')
    for r in res:
        print(f"{r['processes']} processes x {r['threads']} threads, "
              f"{'side by side' if r['parallel'] else 'one after another':18s}"
              f" {r['wall_s']:7.1f} s  {r['samples_per_s']:7.1f} samples/s  x{r['vs_sequential']}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(dict(cores=cores, steps=a.steps, results=res, date=time.strftime('%Y-%m-%d')),
                                      indent=1))


if __name__ == '__main__':
    main()
