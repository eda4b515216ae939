"""The layout: a module never imports a higher-numbered one (no upward arrows, no cycles), and finetuning,
submissions and the ensemble do not reach into another stage."""
import ast, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules() -> dict:
    """Dotted module name -> its notebook's number and letter (`13b`), from the `File to edit` line of each module."""
    out = {}
    for p in (ROOT/'mmvsim').rglob('*.py'):
        m = re.search(r'File to edit: (?:\.\./)+nbs/(\d+)([a-z]?)_([\w.]+)\.ipynb', p.read_text())
        if m:
            name = '.'.join(p.relative_to(ROOT/'mmvsim').with_suffix('').parts)
            if name != '__init__':   # the package's own names (nbs/15_api.ipynb)
                assert name == m.group(3), f'{p} is exported from {m.group(0)}: its name should be {name}'
            out[name] = (int(m.group(1)), m.group(2))
    return out


def imports(name) -> set:
    """The kit's modules that module `name` imports (relative imports resolved to dotted names)."""
    tree = ast.parse((ROOT/'mmvsim'/(name.replace('.', '/') + '.py')).read_text())
    pkg = name.split('.')[:-1]
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.level and n.module:
            base = pkg[:len(pkg) - (n.level - 1)]
            out.add('.'.join([*base, n.module]))
    return out


def test_no_upward_imports():
    num = modules()
    assert len(num) >= 14, num
    for name, k in num.items():
        for dep in imports(name):
            assert num[dep] < k, f'{name} ({k}) imports {dep} ({num[dep]})'


def test_stages_stand_apart():
    assert 'stages.pretrain' not in imports('stages.finetune')
    for name in ('evaluation.submit', 'evaluation.ensemble'): assert 'stages.finetune' not in imports(name)
