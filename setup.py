"""Installs the `mmvsim` package and its console script; settings.ini is the single source of metadata."""
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini')
cfg = cfg['DEFAULT']

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    author=cfg['author'],
    license=cfg['license'],
    packages=setuptools.find_packages(include=['mmvsim', 'mmvsim.*']),
    python_requires='>=' + cfg['min_python'],
    entry_points={'console_scripts': cfg['console_scripts'].split()},
)
