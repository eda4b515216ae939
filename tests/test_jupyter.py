"""Progress bars in a real Jupyter kernel: widgets for a person in JupyterLab (no `TqdmWarning`: ipywidgets is
installed), plain text when papermill runs the notebook."""
import queue
import pytest
from jupyter_client.manager import start_new_kernel

CODE = '''
import warnings
warnings.simplefilter('always')
from tqdm.auto import tqdm
from mmvsim.core import progress_bar
for _ in progress_bar(range(3), desc='kit bar'): pass
for _ in tqdm(range(3), desc='auto bar'): pass
'''


@pytest.fixture(scope='module')
def kernel():
    km, kc = start_new_kernel(kernel_name='python3')
    yield kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def run(kc, code, allow_stdin) -> list:
    """The iopub messages of one execution, as JupyterLab (allow_stdin) or papermill (not) sends it."""
    msg_id = kc.execute(code, allow_stdin=allow_stdin)
    msgs = []
    while True:
        try: m = kc.get_iopub_msg(timeout=120)
        except queue.Empty: raise AssertionError(f'no reply from the kernel; so far: {msgs}') from None
        if m['parent_header'].get('msg_id') != msg_id: continue
        msgs.append(m)
        if m['msg_type'] == 'status' and m['content']['execution_state'] == 'idle': return msgs


def texts(msgs) -> str:
    return ''.join(m['content'].get('text', '') for m in msgs if m['msg_type'] == 'stream') + \
        ''.join(str(m['content']) for m in msgs if m['msg_type'] == 'error')


def widgets(msgs) -> int:
    return sum('application/vnd.jupyter.widget-view+json' in m['content'].get('data', {})
               for m in msgs if m['msg_type'] in ('display_data', 'update_display_data'))


def test_widget_bars_in_jupyterlab(kernel):
    msgs = run(kernel, CODE, allow_stdin=True)
    out = texts(msgs)
    assert 'TqdmWarning' not in out and 'IProgress not found' not in out and 'Error' not in out, out
    assert widgets(msgs) >= 2, [m['msg_type'] for m in msgs]                    # both bars are widgets


def test_text_bars_under_papermill(kernel):
    msgs = run(kernel, CODE.replace('auto bar', 'auto bar 2'), allow_stdin=False)
    out = texts(msgs)
    assert 'kit bar: 100%' in out and 'TqdmWarning' not in out, out
    assert widgets(msgs) == 1                                                   # only tqdm.auto's own bar
