"""mmvsim reads a TFRecord file written by TensorFlow itself (no TensorFlow needed here).

The fixture `fixtures/tf_written.tfrecords` was written by `tf.io.TFRecordWriter` with `tf.train.Example`s in the
competition's feature layout; `fixtures/tf_written.json` holds the values TensorFlow was given. Both are regenerated
by `scripts/tf_compat_check.py`, which also checks the other direction: files written by mmvsim, parsed by TensorFlow
with the official baseline's feature spec.
"""
import hashlib, json
from pathlib import Path

import numpy as np
import pytest

from mmvsim.core import DataError, FRAME_DIM
from mmvsim.data.records import count_records, iter_raw_records, read_records

FIXTURES = Path(__file__).parent / 'fixtures'
RECORDS, EXPECTED = FIXTURES / 'tf_written.tfrecords', FIXTURES / 'tf_written.json'


def sha256(b): return hashlib.sha256(b).hexdigest()


@pytest.fixture(scope='module')
def expected(): return json.loads(EXPECTED.read_text(encoding='utf-8'))


def test_fixture_is_the_tensorflow_file(expected):
    assert expected['written_by'].startswith('tensorflow ')
    assert sha256(RECORDS.read_bytes()) == expected['file_sha256']
    assert RECORDS.stat().st_size < 100_000


@pytest.mark.parametrize('verify', [True, False])
def test_read_records_decodes_tensorflow_file(expected, verify):
    got = list(read_records(RECORDS, verify=verify))   # verify=True checks both CRCs TensorFlow wrote
    want = expected['videos']
    assert [g['id'] for g in got] == [w['id'] for w in want]
    for g, w in zip(got, want):
        assert (g['title'], g['asr_text'], g['category_id']) == (w['title'], w['asr_text'], w['category_id'])
        assert g['tag_id'] is not None and g['tag_id'].dtype == np.int64 and g['tag_id'].tolist() == w['tag_id']
        assert g['frames'].dtype == np.float16 and g['frames'].shape == (w['n_frames'], FRAME_DIM)
        assert sha256(g['frames'].tobytes()) == w['frames_sha256']


def test_framing_of_tensorflow_file(expected):
    offsets = [off for off, _ in iter_raw_records(RECORDS)]
    assert count_records(RECORDS) == len(offsets) == len(expected['videos'])
    assert offsets[0] == 0 and all(b > a for a, b in zip(offsets, offsets[1:]))


@pytest.mark.parametrize('where', ['length', 'payload', 'payload_crc'])
def test_corrupted_tensorflow_file_is_rejected(tmp_path, where):
    raw = bytearray(RECORDS.read_bytes())
    n = int.from_bytes(raw[:8], 'little')
    raw[{'length': 2, 'payload': 12 + n // 2, 'payload_crc': 12 + n + 1}[where]] ^= 0x5A
    bad = tmp_path / 'bad.tfrecords'
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match='CRC mismatch|truncated'): list(read_records(bad))
