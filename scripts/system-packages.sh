#!/usr/bin/env bash
# The Debian packages that ualm's tests and some of its features need, installed by `make setup`
# when they are missing and this user can install them (root with apt-get); otherwise it prints
# the one command that installs them and goes on (the Python set-up does not need them).
#   ffmpeg           the shared libraries torchcodec loads when `datasets` decodes our FLAC
#                    shards, and the program whisper.load_audio runs
#   espeak-ng        real speech in several languages for the speech-detection tests
#   libchromaprint1  acoustic fingerprints for near-duplicate detection
#   chromium         the report test opens the HTML page in a real (headless) browser
set -euo pipefail

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
ldconfig -p 2>/dev/null | grep -q libchromaprint.so.1 || need+=(libchromaprint1)
command -v chromium >/dev/null || need+=(chromium)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
else
  echo "missing system packages: ${need[*]}; the tests that use them will fail until you run:" >&2
  echo "  sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
fi
