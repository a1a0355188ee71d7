# Sourced by setup-torch2.sh and setup-tensorboard.sh (from the repository root): the one venv
# both install into, and the install step.
# Environment: DDPM_TORCH2_VENV (default ~/.cache/libddpm/torch-<version>),
#              DDPM_PYTHON (the python that makes the venv; default python3).
VERSION=$(tr -d ' \n' < scripts/torch2-version)
VENV=${DDPM_TORCH2_VENV:-$HOME/.cache/libddpm/torch-$VERSION}

# venv_install <who> <requirement> [note]: makes the venv when missing and pip-installs <requirement>.
venv_install() {
  local who=$1 requirement=$2 note=${3:-}
  local py=${DDPM_PYTHON:-python3}
  command -v "$py" >/dev/null || { echo "$who: '$py' not found: a Python 3.10+ is needed to install $requirement" >&2; exit 1; }
  echo "$who: installing $requirement into $VENV${note:+ ($note)}" >&2
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$requirement" >&2
}
