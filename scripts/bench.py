"""The kit's benchmark: the training loop, data access, padding, inference and scale, each compared within one run.

    python scripts/bench.py                           # every section: about 15 minutes on 2 CPU cores (`make bench`)
    python scripts/bench.py --quick                   # tiny sizes, under 2 minutes: checks that every section runs
    python scripts/bench.py --sections train,data     # a subset
    python scripts/bench.py --data DIR [--store DIR]  # a competition directory instead of a synthetic `demo` one

Sections (each prints a table; every comparison is a ratio of two figures measured in the same run):
  train      the kit's train() against a plain Hugging Face BertModel loop: time per step, same model, data, steps
  data       the store's random access against the `tfrecord` package reading the same videos, 0/1/2/4 workers
  padding    padded positions and pretraining step time of padding='max', 'longest' and 'longest' + length grouping
  inference  embeddings/s of embed_rows per model size, and the ensemble SVD of 43,000 x 1,536 to 256
  scale      a 100,000-video data set shaped like the `full` preset: generation, store build, peak RSS, 1M estimate

Figures go to benchmarks/results/<machine>-<date>.json (--out to change). Data sets are made in the system's
temporary folder (TMPDIR moves it; the scale section needs about 16 GB there) and deleted at the end.
"""
from __future__ import annotations
import argparse, io, json, math, os, platform, re, shutil, subprocess, sys, tempfile, time, warnings
from contextlib import redirect_stderr
from functools import cached_property
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tfrecord import example_pb2
from tfrecord.reader import extract_feature_dict
from tfrecord.tools.tfrecord2idx import create_index
from transformers import BertModel, get_scheduler
from transformers.models.bert.modeling_bert import BertOnlyMLMHead
from mmvsim.core import FRAME_DIM, cpu_cores
from mmvsim.evaluation.ensemble import blend
from mmvsim.model.encoder import VideoBert, model_config
from mmvsim.training.stage import Inputs, embed_rows
from mmvsim.data.store import Store, load_tokenizer, open_store
from mmvsim.data.datasets import TextLayout, VideoDataset, collate_batch, pad_frames
from mmvsim.data.synth import generate
from mmvsim.model.tasks import (PretrainModel, loss_weights, mask_cap, mask_frames, mask_tokens, mfm_loss,
                                mfm_positions, mlm_positions)
from mmvsim.training.core import EpochSampler, TrainConfig, read_metrics
from mmvsim.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ('train', 'data', 'padding', 'inference', 'scale')
TITLES = dict(
    train="the kit's train() against a plain Hugging Face loop (time per optimizer step after warm-up, median and "
          'best 10-step window; vs_reference = kit / reference)',
    data='random videos read from the store and from the TFRecords (same videos, same order, batch 128)',
    padding="padded share of the positions, and the 'tiny' pretraining step on CPU (batch 32) of each, vs 'max'",
    inference='embed_rows throughput per model size (random weights), and the ensemble SVD',
    scale="a synthetic data set shaped like the 'full' preset, each step in a fresh process")
PRETRAIN_SPLITS = ['pointwise', 'pairwise']
ORIGINAL_VOCAB, ORIGINAL_TAGS = 21128, 10000    # the real data's vocabulary and tag list, used on CUDA
TYPENAMES = {'byte': 'bytes_list', 'float': 'float_list', 'int': 'int64_list'}
T0 = time.perf_counter()


def say(msg: str):
    """A progress line on stderr, with the seconds since the start."""
    print(f'[bench {time.perf_counter() - T0:5.0f}s] {msg}', file=sys.stderr, flush=True)


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    info = Path('/proc/cpuinfo')
    lines = info.read_text().splitlines() if info.exists() else []
    names = [line.split(':', 1)[1].strip() for line in lines if line.startswith('model name')]
    return names[0] if names else platform.processor()


def machine_info() -> dict:
    """What runs the benchmark: a short slug, cores, torch threads, CPU, GPU, torch version and date."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    slug = (re.sub(r'[^a-z0-9]+', '-', gpu.lower().replace('nvidia', '')).strip('-') if gpu
            else f'cpu{cpu_cores()}-{platform.machine()}')
    return dict(slug=slug, cores=cpu_cores(), threads=torch.get_num_threads(), arch=platform.machine(), cpu=cpu_model(),
                gpu=gpu, torch=torch.__version__, date=time.strftime('%Y-%m-%d'))


class Bench:
    """What the sections share: the arguments, the device, a temporary folder, the data and its store."""
    def __init__(self, args, tmp: Path):
        self.args, self.tmp, self.quick, self.seed = args, tmp, args.quick, args.seed
        self.cuda = torch.cuda.is_available()
        self.device = torch.device('cuda' if self.cuda else 'cpu')
        self.compile = self.cuda or args.compile
        self.workers = 8 if self.cuda else 0

    @cached_property
    def data(self) -> Path:
        """The competition directory: --data, or the synthetic `demo` preset (`tiny` with --quick) generated here."""
        if self.args.data: return Path(self.args.data)
        preset = 'tiny' if self.quick else 'demo'
        say(f'generating the synthetic {preset!r} data set')
        generate(self.tmp/'data', preset, seed=self.seed, progress=False, overwrite=True, workers=cpu_cores())
        return self.tmp/'data'

    @cached_property
    def tokenizer(self):
        """--tokenizer, or the data's vocab.txt."""
        return load_tokenizer(self.args.tokenizer or self.data/'vocab.txt')

    @cached_property
    def store(self) -> Store:
        """The data's store: --store (reused when it matches the data) or one built in the temporary folder."""
        store = open_store(self.data, self.args.store or self.tmp/'store', self.tokenizer, progress=False)
        say(f'store ready: {len(store)} videos')
        return store

    @property
    def shape(self) -> tuple[int, int]:
        """(vocabulary, tags) of the trained models: the store's on a CPU, the original's on CUDA."""
        s = self.store
        if self.cuda: return max(ORIGINAL_VOCAB, s.vocab_size), max(ORIGINAL_TAGS, s.num_tags)
        return s.vocab_size, s.num_tags

    @property
    def collate(self):
        """The training collate function: `collate_batch`, with the tags widened to the original's on CUDA."""
        return WideTags(self.shape[1]) if self.cuda else collate_batch

    def sync(self):
        """Wait for the GPU's queued work (nothing on a CPU)."""
        if self.cuda: torch.cuda.synchronize()


class WideTags:
    """`collate_batch` with the tag multi-hot widened to `num_tags` columns (the real tag list has 10,000)."""
    def __init__(self, num_tags: int): self.num_tags = num_tags

    def __call__(self, items) -> dict:
        b = collate_batch(items)
        t = b['tags']
        b['tags'] = torch.cat([t, t.new_zeros(len(t), self.num_tags - t.shape[1])], 1)
        return b


def pretrain_model(store: Store, size: str, vocab: int, tags: int, seed: int) -> PretrainModel:
    """The kit's VTC+MLM+MFM model of `size`, built as `mmvsim.stages.pretrain` builds it, from `seed`."""
    torch.manual_seed(seed)
    return PretrainModel(VideoBert(model_config(size, vocab_size=vocab)), ('vtc', 'mlm', 'mfm'), num_tags=tags,
                         special_ids=store.special_token_ids, mask_id=store.mask_id)


# ---------------------------------------------------------------- train

class Reference(nn.Module):
    """The plain reference: HF `BertModel` over [CLS] + projected frames + text embeddings, with the kit's heads and
    losses (MLM projected at the kit's static number of masked positions per row, so both sides do the same work)."""
    def __init__(self, cfg, num_tags: int, special_ids, mask_id: int):
        super().__init__()
        bc = cfg.bert_config()
        self.bert = BertModel(bc, add_pooling_layer=False)
        self.frame_proj = nn.Linear(cfg.frame_dim, cfg.hidden)
        self.frame_pos = nn.Embedding(cfg.max_frames, cfg.hidden)
        self.frame_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.vtc = nn.Linear(cfg.hidden, num_tags)
        self.mlm = BertOnlyMLMHead(bc)
        self.mlm.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.mlm.predictions.decoder.bias = self.mlm.predictions.bias
        self.mfm = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
                                 nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps), nn.Linear(cfg.hidden, cfg.frame_dim))
        self.vocab_size, self.special_ids, self.mask_id = cfg.vocab_size, special_ids, mask_id
        self.weights = loss_weights(('vtc', 'mlm', 'mfm'), num_tags)

    def forward(self, batch) -> dict:
        frames, fm, tm = batch['frames'], batch['frame_mask'], batch['text_mask']
        cap, kf = mask_cap(tm.shape[1], 0.15), mask_cap(fm.numel(), 0.15)
        ids, labels = mask_tokens(batch['input_ids'], tm, self.special_ids, self.vocab_size, self.mask_id,
                                  max_per_row=cap)
        masked_frames, masked = mask_frames(frames, fm, 0.15, kf)
        F_ = frames.shape[1]
        words = self.bert.embeddings.word_embeddings(ids)                                      # (B, L, H)
        v = self.frame_proj(masked_frames.to(self.frame_proj.weight.dtype)) + self.frame_pos.weight[:F_]
        x = TextLayout.join(words, self.frame_norm(v))                                         # (B, L+F, H)
        mask = TextLayout.join(tm, fm).long()
        h = self.bert(inputs_embeds=x, attention_mask=mask).last_hidden_state
        bce = F.binary_cross_entropy_with_logits(self.vtc(F.relu(h[:, 0])), batch['tags'].float(),
                                                 reduction='none').mean(-1)                     # (B,)
        w = batch['has_tags'].float()
        text, frame_h = TextLayout.split(h, F_)                                                # (B, L, H), (B, F, H)
        pos, labels = mlm_positions(labels, cap)                                               # (B, cap)
        logits = self.mlm(text.gather(1, pos[..., None].expand(-1, -1, text.shape[-1])))       # (B, cap, V)
        mlm = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction='sum')
        fpos, counted = mfm_positions(masked, kf)                                              # (kf,)
        losses = dict(vtc=(bce * w).sum() / w.sum().clamp(min=1), mlm=mlm / (labels != -100).sum().clamp(min=1),
                      mfm=mfm_loss(self.mfm(frame_h.flatten(0, 1)[fpos]), frames, fm, fpos, counted))
        return dict(loss=sum(self.weights[k] * v for k, v in losses.items()), **losses)


def train_plan(b: Bench) -> tuple[list, int, int, int]:
    """(model size, batch) pairs, optimizer steps per run, the warm-up windows of 10 steps left out, and rounds."""
    if b.cuda: return [('large', 128)], 80, 2, 1
    if b.quick: return [('tiny', 32)], 20, 1, 1
    return [('tiny', 32), ('small', 16)], 40, 1, 3


def kit_variants(cuda: bool) -> list[tuple[str, str, dict]]:
    """(row label, padding, extra TrainConfig settings) of the kit's rows."""
    if not cuda:
        return [('kit, padding=max', 'max', {}), ('kit, padding=longest (stage default)', 'longest', {}),
                ('kit, longest + group_by_length', 'longest', dict(group_by_length=True))]
    return [('kit, padding=max, compile default', 'max', dict(compile_mode='default')),
            ('kit, longest, compile default', 'longest', dict(compile_mode='default')),
            ('kit, longest, reduce-overhead', 'longest', dict(compile_mode='reduce-overhead')),
            ('kit, longest + group_by_length, reduce-overhead', 'longest',
             dict(group_by_length=True, compile_mode='reduce-overhead'))]


def reference_run(b: Bench, size: str, batch: int, steps: int, skip: int) -> list[float]:
    """Seconds per step of the plain loop, in windows of 10 steps after the first `skip`."""
    vocab, tags = b.shape
    ds = VideoDataset(b.store, PRETRAIN_SPLITS, padding='max')
    torch.manual_seed(b.seed)
    model = Reference(model_config(size, vocab_size=vocab), tags, b.store.special_token_ids, b.store.mask_id)
    model = model.to(b.device)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, fused=True if b.cuda else None)
    sched = get_scheduler('cosine', opt, num_warmup_steps=math.ceil(0.06 * steps), num_training_steps=steps)
    fwd = torch.compile(model) if b.compile else model
    amp = torch.autocast('cuda', dtype=torch.bfloat16, enabled=b.cuda)
    model.train()
    windows, step, epoch, t0 = [], 0, 0, time.perf_counter()
    while True:
        order = np.random.default_rng([b.seed, epoch]).permutation(len(ds)).tolist()   # the kit's epoch order
        dl = DataLoader(ds, batch_size=batch, sampler=order, collate_fn=b.collate, drop_last=True,
                        num_workers=b.workers, pin_memory=b.cuda)
        for bt in dl:
            bt = {k: v.to(b.device, non_blocking=True) for k, v in bt.items()}
            with amp: out = fwd(bt)
            out['loss'].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % 10 == 0:
                b.sync()
                windows.append((time.perf_counter() - t0) / 10)
                t0 = time.perf_counter()
            if step == steps: return windows[skip:]
        epoch += 1


def kit_run(b: Bench, size: str, batch: int, steps: int, skip: int, padding: str, extra: dict) -> list[float]:
    """Seconds per step of the kit's `train()`, from its metrics windows of 10 steps after the first `skip`."""
    vocab, tags = b.shape
    ds = VideoDataset(b.store, PRETRAIN_SPLITS, padding=padding)
    cfg = TrainConfig(batch_size=batch, max_steps=steps, log_every=10, save_every=10**6, plot=False, seed=b.seed,
                      compile=b.compile, num_workers=b.workers, **extra)
    run, threads = Path(tempfile.mkdtemp(prefix='kit-', dir=b.tmp)), torch.get_num_threads()
    with redirect_stderr(io.StringIO()):   # its progress bar
        train(pretrain_model(b.store, size, vocab, tags, b.seed), ds, cfg, run, collate_fn=b.collate)
    torch.set_num_threads(threads)         # train() sets its own share of the cores
    windows = [batch / r['samples_per_s'] for r in read_metrics(run) if r.get('samples_per_s')]
    shutil.rmtree(run)
    return windows[skip:]


def train_row(b: Bench, size: str, batch: int, steps: int, loop: str, windows: list, ref: list) -> dict:
    """One row of the train table from the loop's and the reference's step times, with the goals that apply to it.

    The median window is the typical step on this machine; the best window is the step undisturbed by the other
    work of a shared machine, and the goals are judged on it (on a quiet machine the two agree)."""
    step_s, best_s = float(np.median(windows)), float(np.min(windows))
    row = dict(size=size, batch=batch, steps=steps, loop=loop, step_ms=round(1000 * step_s, 1),
               best_ms=round(1000 * best_s, 1), samples_per_s=round(batch / step_s, 1),
               vs_reference=round(step_s / float(np.median(ref)), 3), best_vs_reference=round(best_s / min(ref), 3))
    if loop.startswith('kit') and b.cuda:
        row.update(goal_3000_samples_per_s=batch / best_s >= 3000, goal_1_3x_reference=min(ref) / best_s >= 1.3)
    elif loop == 'kit, padding=max' and size == 'tiny':
        row['goal_overhead_le_1_05'] = best_s / min(ref) <= 1.05
    return row


def model_steps(b: Bench, size: str, batch: int, steps: int) -> tuple[list, list]:
    """Seconds of a forward + backward of the kit's model and of the reference's on the same batches, interleaved
    step by step in one process (the models alone, free of the machine's drift between whole runs)."""
    vocab, tags = b.shape
    ds = VideoDataset(b.store, PRETRAIN_SPLITS, padding='max')
    kit = pretrain_model(b.store, size, vocab, tags, b.seed).to(b.device)
    ref = Reference(model_config(size, vocab_size=vocab), tags, b.store.special_token_ids, b.store.mask_id).to(b.device)
    amp = torch.autocast('cuda', dtype=torch.bfloat16, enabled=b.cuda)
    times = {'kit': [], 'ref': []}
    for i, bt in enumerate(DataLoader(ds, batch_size=batch, shuffle=True, collate_fn=b.collate, drop_last=True)):
        if i == steps: break
        bt = {k: v.to(b.device) for k, v in bt.items()}
        for name, m in (('kit', kit), ('ref', ref)):
            b.sync()
            t = time.perf_counter()
            with amp: loss = m(bt)['loss']
            loss.backward()
            m.zero_grad(set_to_none=True)
            b.sync()
            times[name].append(time.perf_counter() - t)
    return times['kit'][2:], times['ref'][2:]   # two warm-up steps each


def train_section(b: Bench) -> list[dict]:
    """Reference loop and the kit's rows for each model size: each loop run in turn, `rounds` times over on a CPU
    (so that a busy moment of the machine falls on every loop alike)."""
    sizes, steps, skip, rounds = train_plan(b)
    ref_label, rows = 'reference (HF BertModel loop)', []
    for size, batch in sizes:
        loops = {ref_label: lambda: reference_run(b, size, batch, steps, skip)}
        for label, padding, extra in kit_variants(b.cuda):
            loops[label] = lambda padding=padding, extra=extra: kit_run(b, size, batch, steps, skip, padding, extra)
        windows = {label: [] for label in loops}
        for r in range(rounds):
            for label, run in loops.items():
                say(f'train: {size}, batch {batch}, {steps} steps, round {r + 1} of {rounds}: {label}')
                windows[label] += run()
        rows += [train_row(b, size, batch, steps * rounds, label, w, windows[ref_label])
                 for label, w in windows.items()]
        say(f'train: {size}: the two models alone, interleaved step by step')
        kit, ref = model_steps(b, size, batch, steps)
        rows.append(train_row(b, size, batch, len(kit), "kit's model alone (fwd + bwd, interleaved)", kit, ref))
    return rows


# ---------------------------------------------------------------- data

class TFRecordVideos(Dataset):
    """Videos read at random from TFRecord files through their indexes, decoded and tokenised at read time."""
    def __init__(self, entries, rows, tokenizer, tag_list, max_frames=32, max_text_len=36, max_tokens=256):
        self.entries, self.rows, self.tok = entries, rows, tokenizer   # entries: (path, byte offset, byte length)
        self.tag_index = {t: i for i, t in enumerate(tag_list)}
        self.max_frames, self.max_text_len, self.max_tokens = max_frames, max_text_len, max_tokens
        self.files = {}

    def __len__(self): return len(self.entries)

    def _read(self, path, offset, length):
        key = (os.getpid(), path)   # one handle per file and process: forked workers must not share a file offset
        f = self.files.get(key)
        if f is None: f = self.files[key] = open(path, 'rb')
        f.seek(offset)
        return f.read(length)[12:-4]   # strip length + crc header and data crc

    def __getitem__(self, i):
        ex = example_pb2.Example()
        ex.ParseFromString(self._read(*self.entries[i]))
        keys = [k for k in ('title', 'frame_feature', 'tag_id') if k in ex.features.feature]
        feats = extract_feature_dict(ex.features, keys, TYPENAMES)
        x = feats.get('frame_feature', b'')
        frames = np.frombuffer(x if isinstance(x, bytes) else x.tobytes(), np.float16).reshape(-1, FRAME_DIM)
        frames, frame_mask = pad_frames(frames, self.max_frames)
        title = self.tok(feats['title'].decode('utf-8'), add_special_tokens=False, truncation=True,
                         max_length=self.max_tokens)['input_ids']
        ids, text_mask = TextLayout().ids([title], self.max_text_len, self.tok.cls_token_id, self.tok.sep_token_id,
                                          self.tok.pad_token_id)
        tags = feats.get('tag_id')
        multi_hot = np.zeros(len(self.tag_index), bool)
        multi_hot[[self.tag_index[t] for t in (tags.tolist() if tags is not None else [])
                   if t in self.tag_index]] = True
        return dict(frames=frames, frame_mask=frame_mask, input_ids=ids, text_mask=text_mask, tags=multi_hot,
                    has_tags=tags is not None, index=int(self.rows[i]))


def record_entries(store: Store, data_dir, index_dir) -> list:
    """(path, offset, length) of every store row's record, from `create_index` files (rows follow record order)."""
    m = store.manifest
    if m['duplicates']: raise SystemExit(f'{store.dir}: the data has repeated ids, rows no longer follow record order')
    entries = []
    Path(index_dir).mkdir(parents=True, exist_ok=True)
    for inp in m['inputs']:
        if not inp['file'].endswith('.tfrecords'): continue
        path = str(Path(data_dir)/inp['file'])
        idx = Path(index_dir)/(inp['file'].replace('/', '__') + '.tfindex')
        if not idx.exists(): create_index(path, str(idx))
        for off, n in np.loadtxt(idx, dtype=np.int64, ndmin=2): entries.append((path, int(off), int(n)))
    if len(entries) != len(store):
        raise SystemExit(f'{len(entries)} records indexed, the store has {len(store)} videos')
    return entries


def timed_pass(ds, batch_size: int, workers: int) -> tuple[float, float]:
    """Videos/s of a full pass (worker start included) and of the batches after the first."""
    dl = DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=collate_batch)
    t0 = time.perf_counter()
    n, first, n_first = 0, None, 0
    for bt in dl:
        n += len(bt['index'])
        if first is None: first, n_first = time.perf_counter(), n
    t1 = time.perf_counter()
    return n / (t1 - t0), (n - n_first) / max(t1 - first, 1e-9)


def data_section(b: Bench) -> list[dict]:
    """Store against TFRecords, in-process and through DataLoaders with 1, 2 and 4 workers."""
    s, batch = b.store, 128
    entries = record_entries(s, b.data, b.tmp/'tfindex')
    rows = np.random.default_rng(b.seed).choice(len(s), min(512 if b.quick else 4096, len(s)), replace=False)
    ds_store = VideoDataset(s, rows, padding='max')
    ds_tfr = TFRecordVideos([entries[r] for r in rows], rows, b.tokenizer, s.tag_list)
    for i in range(min(len(rows), 256)):   # both sides give identical items
        x, y = ds_store[i], ds_tfr[i]
        for k in x: assert np.array_equal(np.asarray(x[k]), np.asarray(y[k])), f'row {rows[i]}: {k} differs'
    warnings.filterwarnings('ignore', 'This DataLoader will create')   # more workers than cores: measured on purpose
    out = []
    for w in (0, 1, 2, 4):
        say(f'data: {len(rows)} random videos, {w} DataLoader workers')
        (s_all, s_steady), (t_all, t_steady) = timed_pass(ds_store, batch, w), timed_pass(ds_tfr, batch, w)
        out.append(dict(loader=f'{w} workers' if w else 'in-process', videos=len(rows),
                        store_videos_per_s=round(s_all), tfrecord_videos_per_s=round(t_all),
                        store_vs_tfrecord=round(s_all / t_all, 2), store_after_first_batch=round(s_steady),
                        tfrecord_after_first_batch=round(t_steady),
                        ratio_after_first_batch=round(s_steady / t_steady, 2)))
    return out


# ---------------------------------------------------------------- padding

def padded_batches(ds: VideoDataset, order, batch: int, keep: int) -> tuple[float, float, list]:
    """Over the batches of `order`: the padded share of positions, positions per video, and `keep` batches."""
    chunks = [order[i:i + batch].tolist() for i in range(0, len(order) - batch + 1, batch)]
    picked = set(np.linspace(0, len(chunks) - 1, min(keep, len(chunks))).round().astype(int).tolist())
    real = total = 0
    kept = []
    for j, bt in enumerate(DataLoader(ds, batch_sampler=chunks, collate_fn=collate_batch)):
        real += int(bt['frame_mask'].sum() + bt['text_mask'].sum())
        total += bt['frame_mask'].numel() + bt['text_mask'].numel()
        if j in picked: kept.append(bt)
    return 1 - real / total, total / (len(chunks) * batch), kept


def step_times(b: Bench, batches: dict) -> dict:
    """Mean seconds of a CPU pretraining step ('tiny': fwd, bwd, AdamW) on each case's batches, cases interleaved."""
    s = b.store
    models = {k: pretrain_model(s, 'tiny', s.vocab_size, s.num_tags, b.seed) for k in batches}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=5e-4) for k, m in models.items()}
    secs = {k: [] for k in batches}
    for i in range(min(len(v) for v in batches.values())):
        for k, m in models.items():
            t = time.perf_counter()
            m(batches[k][i])['loss'].backward()
            opts[k].step()
            opts[k].zero_grad(set_to_none=True)
            secs[k].append(time.perf_counter() - t)
    return {k: float(np.mean(v[1:] or v)) for k, v in secs.items()}   # the first step warms up


def padding_section(b: Bench) -> list[dict]:
    """padding='max' against 'longest' and 'longest' + the trainer's length-grouped batches, on the pointwise videos."""
    batch, keep = 32, 8 if b.quick else 60
    ds = {p: VideoDataset(b.store, 'pointwise', padding=p) for p in ('max', 'longest')}
    n = len(ds['max'])
    order = np.array(list(EpochSampler(n, b.seed)))   # the trainer's first epoch: shuffled, and grouped by length
    grouped = np.array(list(EpochSampler(n, b.seed, lengths=ds['longest'].lengths(), batch_size=batch)))
    cases = {'max': (ds['max'], order), 'longest': (ds['longest'], order),
             'longest + length grouping': (ds['longest'], grouped)}
    stats, batches = {}, {}
    for k, (d, o) in cases.items():
        say(f'padding: {k}')
        share, positions, batches[k] = padded_batches(d, o, batch, keep)
        stats[k] = share, positions
    say(f'padding: timing {len(batches["max"])} steps of each')
    secs = step_times(b, batches)
    return [dict(padding=k, videos=n, batches=n // batch, padded_share=round(share, 4),
                 positions_per_video=round(pos, 1), step_ms=round(1000 * secs[k], 1),
                 vs_max=round(secs[k] / secs['max'], 3)) for k, (share, pos) in stats.items()]


# ---------------------------------------------------------------- inference

def embed_seconds(b: Bench, model: VideoBert, rows, batch: int) -> float:
    """Seconds `embed_rows` takes over `rows`, after a warm-up batch."""
    embed_rows(model, b.store, rows[:batch], Inputs(), batch_size=batch, progress=False)
    b.sync()
    t = time.perf_counter()
    embed_rows(model, b.store, rows, Inputs(), batch_size=batch, progress=False)
    b.sync()
    return time.perf_counter() - t


def svd_seconds(n: int, members: int, seed: int) -> float:
    """Seconds of the ensemble's blend (weighted concat, SVD to 256) of `members` random (n, 256) embeddings."""
    rng = np.random.default_rng(seed)
    ids = [str(i) for i in range(n)]
    embs = [(ids, rng.standard_normal((n, 256), dtype=np.float32)) for _ in range(members)]
    t = time.perf_counter()
    blend(embs, None, 256)
    return time.perf_counter() - t


def inference_section(b: Bench) -> list[dict]:
    """embed_rows per model size, 43,000 videos with 'large' on CUDA, and the ensemble SVD."""
    s, batch = b.store, 512 if b.cuda else 256
    sizes = ['tiny'] if b.quick else ['tiny', 'small'] + (['base', 'large'] if b.cuda else [])
    rows = np.random.default_rng(b.seed).choice(len(s), min(len(s), 256 if b.quick else 8192 if b.cuda else 2048),
                                                replace=False)
    out = []
    for size in sizes:
        say(f'inference: embed_rows, {size}, {len(rows)} videos')
        torch.manual_seed(b.seed)
        model = VideoBert(model_config(size, vocab_size=s.vocab_size)).to(b.device)
        secs = embed_seconds(b, model, rows, batch)
        out.append(dict(task=f'embed_rows, {size}', videos=len(rows), seconds=round(secs, 2),
                        embeddings_per_s=round(len(rows) / secs, 1)))
    if b.cuda:
        say('inference: embed 43,000 videos with large')
        many = np.resize(s.rows(), 43_000)   # the store's videos repeated
        secs = embed_seconds(b, model, many, batch)
        out.append(dict(task='embed 43,000 videos, large', videos=len(many), seconds=round(secs, 2),
                        embeddings_per_s=round(len(many) / secs, 1), goal_under_10_s=secs < 10))
    n = 4_300 if b.quick else 43_000
    say(f'inference: ensemble SVD of {n:,} x 1,536')
    out.append(dict(task=f'ensemble blend: {n:,} x 1,536 (6 x 256) -> SVD 256', videos=n,
                    seconds=round(svd_seconds(n, 6, b.seed), 2)))
    return out


# ---------------------------------------------------------------- scale

CHILD = """import json, resource, sys, time
from pathlib import Path
from {module} import {func} as run
kw = json.loads(sys.argv[1])
t0 = time.perf_counter()
out = run(**kw)
seconds, ru, status = time.perf_counter() - t0, resource.getrusage, Path('/proc/self/status')
# VmHWM is this process's own peak; its ru_maxrss also holds the launching process's RSS (kept across fork and exec)
hwm = [int(x.split()[1]) for x in status.read_text().splitlines() if x.startswith('VmHWM')] if status.exists() else []
print(json.dumps(dict(seconds=seconds, self_kb=hwm[0] if hwm else ru(resource.RUSAGE_SELF).ru_maxrss,
                      children_kb=ru(resource.RUSAGE_CHILDREN).ru_maxrss,
                      result=out if isinstance(out, dict) else str(out))))
"""


def child(module: str, func: str, **kw) -> dict:
    """Run `module.func(**kw)` in a fresh Python: its seconds, peak RSS in KiB (its own, its children's), result."""
    p = subprocess.run([sys.executable, '-c', CHILD.format(module=module, func=func), json.dumps(kw)],
                       capture_output=True, text=True)
    if p.returncode: raise RuntimeError(f'{module}.{func} failed:\n{p.stderr[-3000:]}')
    return json.loads(p.stdout.strip().splitlines()[-1])


def dir_bytes(d: Path) -> int:
    """Bytes of the files under `d`."""
    return sum(p.stat().st_size for p in d.rglob('*') if p.is_file())


def scale_section(b: Bench) -> list[dict]:
    """Generate a `full`-shaped data set, build its store, each in a fresh process; extrapolate to 1M videos."""
    n = b.args.scale_videos or (2_000 if b.quick else 100_000)
    shards = max(2, math.ceil(n / 50_000))
    asked = shards * (n // shards)
    root = Path(tempfile.mkdtemp(prefix='mmvsim-scale-'))
    try:
        need, free = asked * 160_000, shutil.disk_usage(root).free   # ~66 KB per video in each of data and store
        if free < need:
            say(f'scale: skipped, {free / 1e9:.1f} GB free in {root.parent}, about {need / 1e9:.1f} GB needed')
            return [dict(step='skipped', note=f'{free / 1e9:.1f} GB free, about {need / 1e9:.1f} GB needed')]
        data, store = root/'data', root/'store'
        say(f'scale: generating {asked:,} videos ({shards} shards, {cpu_cores()} workers)')
        gen = child('mmvsim.data.synth', 'generate', out_dir=str(data), preset='full', seed=b.seed, shards=shards,
                    videos_per_shard=asked // shards, pair_queries=max(1, round(9_700 * asked / 1e6)),
                    test_queries=max(1, round(3_070 * asked / 1e6)), workers=cpu_cores(), progress=False)
        say('scale: building the store')
        build = child('mmvsim.data.store', 'build_store', data_dir=str(data), store_dir=str(store),
                      tokenizer=str(data/'vocab.txt'), progress=False)
        videos = json.loads((store/'manifest.json').read_text())['videos']
        data_bytes, store_bytes = dir_bytes(data), dir_bytes(store)
    finally: shutil.rmtree(root, ignore_errors=True)
    gen_peak, build_peak = max(gen['self_kb'], gen['children_kb']) / 1024, build['self_kb'] / 1024
    per_m = 1e6 / videos
    return [dict(step=f'generate ({cpu_cores()} workers)', videos_asked=asked,
                 pointwise=gen['result']['sizes']['pointwise'], videos=videos, seconds=round(gen['seconds'], 1),
                 videos_per_s=round(videos / gen['seconds'], 1),
                 peak_rss_mb=round(gen['self_kb'] / 1024), worker_peak_rss_mb=round(gen['children_kb'] / 1024),
                 rss_under_2gb=gen_peak < 2048, disk_gb=round(data_bytes / 1e9, 2)),
            dict(step='build store', videos=videos, seconds=round(build['seconds'], 1),
                 videos_per_s=round(videos / build['seconds'], 1), peak_rss_mb=round(build_peak),
                 rss_under_2gb=build_peak < 2048, disk_gb=round(store_bytes / 1e9, 2)),
            dict(step='both, extrapolated to 1,000,000 videos', videos=1_000_000,
                 seconds=round((gen['seconds'] + build['seconds']) * per_m),
                 disk_gb=round((data_bytes + store_bytes) * per_m / 1e9, 1))]


# ---------------------------------------------------------------- output

def cell(v) -> str:
    """A value as a table cell: pass/FAIL for goals, thousands separators, up to 4 significant digits below 100."""
    if v is None: return ''
    if isinstance(v, bool): return 'pass' if v else 'FAIL'
    if isinstance(v, int): return f'{v:,}'
    if isinstance(v, float): return f'{v:,.0f}' if abs(v) >= 1000 else f'{v:.1f}' if abs(v) >= 100 else f'{v:.4g}'
    return str(v)


def table(rows: list[dict]) -> str:
    """A Markdown table of row dicts, columns in order of first appearance."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = [cols, ['---'] * len(cols)] + [[cell(r.get(k)) for k in cols] for r in rows]
    return '\n'.join('| ' + ' | '.join(line) + ' |' for line in lines)


def save(result: dict, out: Path):
    """Write the results as JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + '\n')


def parse_args():
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sections', default=','.join(SECTIONS), help='comma separated, of: ' + ','.join(SECTIONS))
    ap.add_argument('--quick', action='store_true', help='tiny sizes: every section in well under 2 minutes')
    ap.add_argument('--data', help='a competition directory (default: generate the synthetic demo preset)')
    ap.add_argument('--store', help='its store directory (reused when it matches; default: temporary)')
    ap.add_argument('--tokenizer', help="tokenizer folder or vocab.txt (default: the data's vocab.txt)")
    ap.add_argument('--scale-videos', type=int, help='pointwise videos of the scale section (default 100,000)')
    ap.add_argument('--compile', action='store_true', help='torch.compile both training loops on a CPU too')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', help='JSON file (default: benchmarks/results/<machine>-<date>.json)')
    args = ap.parse_args()
    bad = set(args.sections.split(',')) - set(SECTIONS)
    if bad: ap.error(f'unknown sections {sorted(bad)}; choose from {",".join(SECTIONS)}')
    return args


RUNNERS = dict(train=train_section, data=data_section, padding=padding_section, inference=inference_section,
               scale=scale_section)


def main():
    args = parse_args()
    if 'OMP_NUM_THREADS' not in os.environ: torch.set_num_threads(cpu_cores())
    machine = machine_info()
    out = Path(args.out) if args.out else ROOT/'benchmarks'/'results'/f"{machine['slug']}-{machine['date']}.json"
    sections = [s for s in SECTIONS if s in args.sections.split(',')]
    result = dict(machine=machine, args=vars(args), seconds={})
    say(f"{machine['slug']}: {machine['cpu']}, {machine['threads']} torch threads; sections {', '.join(sections)}")
    with tempfile.TemporaryDirectory(prefix='mmvsim-bench-') as tmp:
        b = Bench(args, Path(tmp))
        if set(sections) - {'scale'}:
            t = time.perf_counter()
            b.store   # the data and store the other sections share, timed apart
            result['seconds']['setup'] = round(time.perf_counter() - t, 1)
        for name in sections:
            t = time.perf_counter()
            result[name] = RUNNERS[name](b)
            result['seconds'][name] = round(time.perf_counter() - t, 1)
            say(f'{name}: done in {result["seconds"][name]:.0f} s')
            print(f'\n## {name}: {TITLES[name]}\n\n{table(result[name])}', flush=True)
            save(result, out)   # after every section: an interrupted run keeps what it measured
    result['seconds']['total'] = round(time.perf_counter() - T0, 1)
    save(result, out)
    print(f"\n{sum(len(result[s]) for s in sections)} rows in {result['seconds']['total']:.0f} s, written to {out}")


if __name__ == '__main__':
    main()
