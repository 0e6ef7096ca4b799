"""Caps for packing a codebase and reading an archive, and the default ignore rules."""

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class PackLimits:
    """Per-file and total caps. Over `max_file_bytes` a file is skipped; over a total cap packing fails."""

    max_file_bytes: int = 1 * MiB
    max_total_bytes: int = 64 * MiB  # of included text; a 1M-token window holds about 4 MiB of code
    max_files: int = 20_000  # included files
    max_depth: int = 32  # folder levels
    max_entries: int = 100_000  # archive entries (files, folders, links) before anything is read
    max_archive_bytes: int = 256 * MiB  # decompressed bytes read from an archive, all entries together
    max_ratio: float = 200.0  # decompressed / compressed, per zip entry and for a whole .tar.gz
    use_gitignore: bool = True
    use_default_ignores: bool = True


# gitwildmatch lines applied below every .gitignore: VCS folders, dependency and build outputs, caches,
# lock files (poetry.lock alone was 200k of 1.3M tokens in gitingest#20), secrets-prone files (.env, terraform
# state), editor/temp files, and binary formats known by name (others are caught by content).
DEFAULT_IGNORES = """
.git
.hg
.svn
.bzr
node_modules/
bower_components/
.venv/
venv/
__pycache__/
*.py[cod]
.pytest_cache/
.mypy_cache/
.ruff_cache/
.tox/
.nox/
.hypothesis/
.cache/
.gradle/
.idea/
.vscode/
*.egg-info/
.eggs/
build/
dist/
target/
.next/
.nuxt/
coverage/
.coverage
vendor/
.env
*.tfstate
*.tfstate.*
*.log
*.tmp
*.bak
*.swp
*.swo
*.svg
.DS_Store
Thumbs.db
package-lock.json
yarn.lock
pnpm-lock.yaml
bun.lockb
bun.lock
poetry.lock
Pipfile.lock
uv.lock
Cargo.lock
Gemfile.lock
composer.lock
go.sum
*.min.js
*.min.css
*.map
*.so
*.dylib
*.dll
*.exe
*.o
*.a
*.class
*.jar
*.whl
*.png
*.jpg
*.jpeg
*.gif
*.ico
*.pdf
*.zip
*.gz
*.tar
*.mp3
*.mp4
*.mov
*.wav
*.sqlite
*.sqlite3
*.db
"""
