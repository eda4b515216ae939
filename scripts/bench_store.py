"""Random-access throughput: the memory-mapped store against reading the same videos from the TFRecords.

Both sides serve the same random videos, in the same order, as the same batches (sub-sampled/padded frames, text ids,
masks, multi-hot tags) through a DataLoader with one worker. The TFRecord side is what a user of the `tfrecord` package
would write: an index per file (`tfrecord2idx.create_index`), a seek per record, parsing with the package's protobuf
classes and feature extraction, the trap-proof frame decode, and tokenising the title at read time.

    python scripts/bench_store.py                 # generate the synthetic `demo` preset in a temporary folder
    python scripts/bench_store.py --tiny          # quick check on the `tiny` preset
    python scripts/bench_store.py --data DIR [--store DIR] [--tokenizer DIR]
"""
from __future__ import annotations
import argparse, tempfile, time
from pathlib import Path
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tfrecord import example_pb2
from tfrecord.reader import extract_feature_dict
from tfrecord.tools.tfrecord2idx import create_index
from mmvsim.core import FRAME_DIM
from mmvsim.records import competition_files
from mmvsim.store import Store, VideoDataset, collate_videos, load_tokenizer, open_store, pad_frames, text_ids

TYPENAMES = {'byte': 'bytes_list', 'float': 'float_list', 'int': 'int64_list'}


class TFRecordVideos(Dataset):
    """Videos read at random from TFRecord files through their indexes, decoded and tokenised at read time."""
    def __init__(self, entries, rows, tokenizer, tag_list, max_frames=32, max_text_len=36, max_tokens=256):
        self.entries, self.rows, self.tok = entries, rows, tokenizer   # entries: (path, byte offset, byte length)
        self.tag_index = {t: i for i, t in enumerate(tag_list)}
        self.max_frames, self.max_text_len, self.max_tokens = max_frames, max_text_len, max_tokens
        self.files = {}

    def __len__(self): return len(self.entries)

    def _read(self, path, offset, length):
        f = self.files.get(path)
        if f is None: f = self.files[path] = open(path, 'rb')   # one handle per file and worker
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
        ids, text_mask = text_ids(title, (), self.max_text_len, self.tok.cls_token_id, self.tok.sep_token_id,
                                  self.tok.pad_token_id)
        tags = feats.get('tag_id')
        tag_index = np.array([self.tag_index[t] for t in tags.tolist() if t in self.tag_index]
                             if tags is not None else [], np.int32)
        return dict(frames=frames, frame_mask=frame_mask, input_ids=ids, text_mask=text_mask, tag_index=tag_index,
                    num_tags=len(self.tag_index), has_tags=tags is not None, index=int(self.rows[i]))


def record_entries(store: Store, data_dir, index_dir) -> list:
    """(path, offset, length) of every store row's record, from `create_index` files (rows follow record order)."""
    m = store.manifest
    if m['duplicates']: raise SystemExit(f'{store.dir}: the data has repeated ids, rows no longer follow record order')
    entries = []
    for inp in m['inputs']:
        if not inp['file'].endswith('.tfrecords'): continue
        path = str(Path(data_dir)/inp['file'])
        idx = Path(index_dir)/(inp['file'].replace('/', '__') + '.tfindex')
        if not idx.exists(): create_index(path, str(idx))
        for off, n in np.loadtxt(idx, dtype=np.int64, ndmin=2): entries.append((path, int(off), int(n)))
    if len(entries) != len(store):
        raise SystemExit(f'{len(entries)} records indexed, the store has {len(store)} videos')
    return entries


def timed_pass(ds, batch_size, workers):
    """Seconds for a full pass (including worker start) and for all batches after the first."""
    dl = DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=collate_videos)
    t0 = time.perf_counter()
    n, first = 0, None
    for b in dl:
        n += len(b['index'])
        if first is None: first, n_first = time.perf_counter(), n
    t1 = time.perf_counter()
    return n, t1 - t0, (n - n_first) / max(t1 - first, 1e-9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', help='competition directory (default: generate a synthetic one in a temporary folder)')
    ap.add_argument('--preset', default='demo', help='synthetic preset when --data is not given')
    ap.add_argument('--store', help='store directory (reused when it matches the data; default: temporary)')
    ap.add_argument('--tokenizer', help='tokenizer folder or vocab.txt (default: the data directory vocab.txt)')
    ap.add_argument('--n', type=int, default=8192, help='random videos read by each side')
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--workers', default='1,0',
                    help='DataLoader worker counts to measure, comma separated (0: in-process)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--tiny', action='store_true', help='quick check: tiny preset, 512 videos')
    a = ap.parse_args()
    if a.tiny: a.preset, a.n = 'tiny', min(a.n, 512)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(a.data) if a.data else tmp/'data'
        if not a.data:
            from mmvsim.synth import generate
            t = time.perf_counter()
            generate(data, a.preset, seed=a.seed, progress=False)
            print(f'generated synthetic preset {a.preset!r} in {time.perf_counter() - t:.1f} s')
        competition_files(data)
        tok = load_tokenizer(a.tokenizer or data)
        t = time.perf_counter()
        store = open_store(data, a.store or tmp/'store', tok, progress=False)
        m = store.manifest
        print(f'store ready in {time.perf_counter() - t:.1f} s: {len(store)} videos, {m["frames"]} frames, '
              f'{sum(p.stat().st_size for p in store.dir.iterdir()) / 2**20:.0f} MiB')
        entries = record_entries(store, data, tmp)
        rng = np.random.default_rng(a.seed)
        rows = rng.choice(len(store), min(a.n, len(store)), replace=False)
        ds_store = VideoDataset(store, rows)
        ds_tfr = TFRecordVideos([entries[r] for r in rows], rows, tok, store.tag_list)
        for i in range(min(len(rows), 3 * a.batch)):   # both sides give identical items
            x, y = ds_store[i], ds_tfr[i]
            for k in x:
                assert np.array_equal(np.asarray(x[k]), np.asarray(y[k])), f'row {rows[i]}: {k} differs'
        print(f'{len(rows)} random videos (same ones, same order on both sides), batch {a.batch}; '
              f'checked identical items for the first {min(len(rows), 3 * a.batch)}')
        for w in [int(x) for x in a.workers.split(',')]:
            print(f'DataLoader with {w} worker(s)' if w else 'in-process DataLoader (num_workers=0)')
            res = []
            for name, ds in [('store (memmap)', ds_store), ('tfrecord (index + seek + parse + tokenize)', ds_tfr)]:
                n, total, steady = timed_pass(ds, a.batch, w)
                res.append((n / total, steady))
                print(f'  {name:45s} {n / total:8.0f} videos/s   (after the first batch: {steady:.0f} videos/s)')
            (s_all, s_st), (t_all, t_st) = res
            print(f'  store / tfrecord: {s_all / t_all:.1f}x (full pass), {s_st / t_st:.1f}x (after the first batch)')

if __name__ == '__main__':
    main()
