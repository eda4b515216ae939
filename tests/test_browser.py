"""A real browser in JupyterLab: headless Chromium (Debian's package, driven by Playwright) opens the pretraining
notebook on the `tiny` data, runs every cell, and must see no error, widget progress bars and the loss figure."""
import json, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from mmvsim.data.synth import generate

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
BIN = Path(sys.executable).parent
FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on localhost over `tmp_path`, with the pretraining notebook prepared for the tiny data."""
    if not Path(CHROMIUM).exists():
        msg = ('no chromium: `make test` installs Debian\'s package when it runs as root with apt; '
               'skipping the browser test')
        print(msg)
        pytest.skip(msg)
    generate(tmp_path/'tiny', 'tiny', progress=False)
    subprocess.run([str(BIN/'papermill'), str(ROOT/'nbs/experiments/pretrain.ipynb'), str(tmp_path/'pretrain.ipynb'),
                    '--prepare-only', '-p', 'data_dir', str(tmp_path/'tiny'), '-p', 'run_dir', str(tmp_path/'run'),
                    '-p', 'epochs', '1', '-p', 'batch_size', '16'], check=True, capture_output=True)
    port, token = free_port(), 'mmvsim-test'
    log = open(tmp_path/'lab.log', 'w')
    server = subprocess.Popen([str(BIN/'jupyter'), 'lab', '--no-browser', f'--port={port}', '--ip=127.0.0.1',
                               '--allow-root', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={tmp_path}'],
                              stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, OMP_NUM_THREADS='2'))
    url = f'http://127.0.0.1:{port}'
    for _ in range(120):
        try:
            urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=1)
            break
        except OSError: time.sleep(0.5)
    else: raise AssertionError((tmp_path/'lab.log').read_text()[-3000:])
    yield url, token, tmp_path
    server.terminate()
    server.wait(30)


def test_pretrain_notebook_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright
    url, token, d = lab
    shot = Path(os.environ.get('MMVSIM_SCREENSHOT', d/'jupyterlab.png'))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={'width': 1400, 'height': 1000})
        page.goto(f'{url}/lab/tree/pretrain.ipynb?token={token}')
        page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=120_000)
        page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=120_000)
        news = page.get_by_role('button', name='No', exact=True)         # JupyterLab's offer of news: decline
        if news.count(): news.first.click()
        for _ in range(5):                                        # Run > Run All Cells, until the cells start
            page.locator('.jp-Notebook .jp-Cell').first.click()
            page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
            page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
            try:
                page.wait_for_function("[...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                                       ".some(e => /[0-9*]/.test(e.textContent))", timeout=15_000)
                break
            except Exception: page.keyboard.press('Escape')
        deadline = time.time() + 300                              # every code cell numbered, none running
        while time.time() < deadline:
            prompts = page.locator('.jp-CodeCell .jp-InputPrompt').all_inner_texts()
            if prompts and all(p.strip().strip('[]:').isdigit() for p in prompts): break
            time.sleep(1)
        else: raise AssertionError(f'cells did not finish: {prompts}')
        page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
        widgets = page.locator('.jp-OutputArea-output .widget-hprogress').count()
        figure = page.locator('.jp-OutputArea-output img').count()
        page.keyboard.press('Control+s')
        time.sleep(2)
        page.locator('.jp-OutputArea-output img').last.scroll_into_view_if_needed()
        page.screenshot(path=str(shot), full_page=False)
        browser.close()
    outs = [o for c in json.loads((d/'pretrain.ipynb').read_text())['cells'] for o in c.get('outputs', [])]
    errors = [o for o in outs if o['output_type'] == 'error']
    stderr = ''.join(''.join(o['text']) for o in outs if o.get('name') == 'stderr')
    assert not errors, errors
    assert not stderr.strip(), stderr[-2000:]                    # no TqdmWarning, nor any other warning
    assert widgets >= 1 and figure >= 1, (widgets, figure)        # a widget progress bar, the loss figure
    assert any('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for o in outs)
    assert (d/'run'/'model.safetensors').exists() and shot.stat().st_size > 10_000
    print(f'screenshot: {shot}')
