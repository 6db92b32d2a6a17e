"""Every setting read from the environment is in the README's configuration table: the names
are an interface (docs/architecture.md, "Settings"), so a new one cannot land undocumented."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_environment_setting_is_in_the_readme():
    settings_text = (ROOT / "config" / "settings.py").read_text()
    names = set(re.findall(r'env\.(?:str|int|bool|float|list|db_url)\(\s*"([A-Z][A-Z0-9_]*)"', settings_text))
    assert len(names) > 40, names  # the pattern still finds them
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration"):readme.index("## Where things live")]
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert not missing, f"add these to the configuration table in README.md: {missing}"
