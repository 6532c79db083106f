#!/usr/bin/env bash
# Smoke test of the explorer in a real terminal: tmux runs `slimscope IMAGE` in a 120x40 window.
#
#   scripts/tmux-smoke.sh [options] IMAGE
#
#   --expect TEXT         must be on the first screen (repeatable); "What need not ship" always is
#   --search TEXT         typed after `/` (default: the first path component shown in the tree)
#   --expect-search TEXT  must be on screen while the search is applied (repeatable)
#   --hostile             IMAGE is fixtures/images/hostile: checks its names render as inert text and
#                         that Enter on `[@click=app.quit()]x` does not quit
#   --slimscope CMD       the command to run (default: .venv/bin/slimscope of this repository)
#   --timeout SECONDS     how long the analysis may take (default 120)
#   --keep                leave the tmux server running on failure (socket name is printed)
#
# Steps: wait for the main screen, check the expected strings, then press keys and check the screen
# changes (x: only removable; j, l, ctrl+space: open and collapse a folder; /TEXT: search; escape;
# ?: help; escape), then q: slimscope must exit with status 0, leave the alternate screen, and turn
# mouse reporting off and the cursor back on. A second run presses ctrl+c right after start (status 130; while
# loading, for any image that takes a moment) and checks the same. Installs Debian's tmux if missing.
# Exit status 0 when every check passes; 1 with a message and the last screen otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLIMSCOPE="$ROOT/.venv/bin/slimscope"
TIMEOUT=120
KEEP=0
HOSTILE=0
IMAGE=""
SEARCH=""
EXPECT=("What need not ship")
EXPECT_SEARCH=()

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --expect) EXPECT+=("$2"); shift 2 ;;
    --search) SEARCH=$2; shift 2 ;;
    --expect-search) EXPECT_SEARCH+=("$2"); shift 2 ;;
    --hostile) HOSTILE=1; shift ;;
    --slimscope) SLIMSCOPE=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    -*) echo "tmux-smoke: unknown option $1" >&2; usage ;;
    *) [ -z "$IMAGE" ] || usage; IMAGE=$1; shift ;;
  esac
done
[ -n "$IMAGE" ] || usage

if ! command -v tmux >/dev/null 2>&1; then
  echo "tmux-smoke: installing tmux (Debian package)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tmux >/dev/null \
    || { echo "tmux-smoke: FAIL: tmux is missing and could not be installed" >&2; exit 1; }
fi

SOCKET="slimscope-smoke-$$"
PROMPT="smoke-prompt\$ "
WORK=$(mktemp -d)
t() { tmux -L "$SOCKET" -f /dev/null "$@"; }

cleanup() {
  local status=$?
  if [ "$status" != 0 ] && [ "$KEEP" = 1 ]; then
    echo "tmux-smoke: tmux server kept: tmux -L $SOCKET attach -t smoke" >&2
  else
    t kill-server >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

screen() { t capture-pane -p -t smoke -J; }
flag() { t display-message -p -t smoke "#{$1}"; }

fail() {
  echo "tmux-smoke: FAIL: $*" >&2
  echo "----- screen (120x40) -----" >&2
  screen >&2 || true
  echo "---------------------------" >&2
  exit 1
}

# wait_for TEXT [SECONDS]: until TEXT is on screen
wait_for() {
  local text=$1 limit=${2:-10} waited=0
  while ! screen | grep -qF -- "$text"; do
    sleep 0.1
    waited=$((waited + 1))
    [ "$waited" -lt $((limit * 10)) ] || fail "waited ${limit}s for: $text"
  done
}

# wait_for_re REGEX [SECONDS]: until an extended regular expression matches the screen
wait_for_re() {
  local regex=$1 limit=${2:-10} waited=0
  while ! screen | grep -qE -- "$regex"; do
    sleep 0.1
    waited=$((waited + 1))
    [ "$waited" -lt $((limit * 10)) ] || fail "waited ${limit}s for /$regex/"
  done
}

# wait_gone TEXT [SECONDS]: until TEXT is no longer on screen
wait_gone() {
  local text=$1 limit=${2:-10} waited=0
  while screen | grep -qF -- "$text"; do
    sleep 0.1
    waited=$((waited + 1))
    [ "$waited" -lt $((limit * 10)) ] || fail "waited ${limit}s for this to go: $text"
  done
}

# settle: until the screen stops changing for 0.3 s (at most 5 s)
settle() {
  local before now same=0 tries=0
  before=$(screen)
  while [ "$same" -lt 3 ] && [ "$tries" -lt 50 ]; do
    sleep 0.1
    now=$(screen)
    if [ "$now" = "$before" ]; then same=$((same + 1)); else same=0; before=$now; fi
    tries=$((tries + 1))
  done
}

keys() { t send-keys -t smoke "$@"; }

# Start a shell with a known prompt; slimscope's exit status is printed after it.
start_shell() {
  t kill-server >/dev/null 2>&1 || true
  t new-session -d -s smoke -x 120 -y 40 "env -u TMUX PS1='$PROMPT' TERM=tmux-256color bash --norc --noprofile"
  wait_for "smoke-prompt" 10
  keys "clear" Enter
  sleep 0.2
}

run_slimscope() {
  printf -v command '%q ' $SLIMSCOPE "$IMAGE"
  keys "${command}; echo \"exit-status:\" \$?" Enter  # prints "exit-status: N"; the command line does not
}

check_restored() {
  local status=${1:-0}
  wait_for "exit-status: " 15
  screen | grep -qF "exit-status: $status" || fail "slimscope did not exit with status $status"
  wait_for "smoke-prompt" 5
  [ "$(flag alternate_on)" = 0 ] || fail "the terminal is still on the alternate screen"
  for mode in mouse_any_flag mouse_button_flag mouse_standard_flag mouse_sgr_flag; do
    [ "$(flag "$mode")" = 0 ] || fail "mouse reporting ($mode) is still on"
  done
  [ "$(flag cursor_flag)" = 1 ] || fail "the cursor is still hidden"
  ! screen | grep -qF "What need not ship" || fail "the explorer is still on screen"
}

# --- run 1: the main screen and keys --------------------------------------------------------------------
start_shell
run_slimscope
wait_for "What need not ship" "$TIMEOUT"
settle
[ "$(flag alternate_on)" = 1 ] || fail "the explorer is not on the alternate screen"
first=$(screen)
for text in "${EXPECT[@]}"; do
  grep -qF -- "$text" <<<"$first" || fail "not on the first screen: $text"
done
grep -q $'\e' <<<"$first" && fail "a raw ESC reached the screen"
echo "tmux-smoke: main screen ok (${#EXPECT[@]} expected strings)"

# x: only removable paths, and back
keys x
wait_for "only removable"
keys x
wait_gone "only removable"

# j: first folder, l opens it, ctrl+space collapses everything again
keys j
settle
on_folder=$(screen)
keys l
settle
[ "$(screen)" != "$on_folder" ] || fail "l did not open the first folder"
keys C-Space
settle
[ "$(screen)" = "$on_folder" ] || fail "ctrl+space did not collapse the folders"
echo "tmux-smoke: x, j, l, ctrl+space ok"

# /TEXT: search
if [ -z "$SEARCH" ]; then
  SEARCH=$(grep -oE '(▶|▼) . [A-Za-z0-9._-]+/' <<<"$on_folder" | sed -n 1p | sed -E 's/^(▶|▼) . //; s#/$##')
  [ -n "$SEARCH" ] || fail "no folder name found to search for"
fi
keys /
wait_for "search paths (substring"
keys -l "$SEARCH"
wait_for "matching path"
settle
searched=$(screen)
grep -qF -- "$SEARCH" <<<"$searched" || fail "the search text is not shown: $SEARCH"
for text in "${EXPECT_SEARCH[@]}"; do
  grep -qF -- "$text" <<<"$searched" || fail "not shown while searching for $SEARCH: $text"
done
keys Escape
wait_gone "matching path"
echo "tmux-smoke: search for '$SEARCH' ok"

# ?: help, escape closes it
keys "?"
wait_for "slimscope explorer keys"
keys Escape
wait_gone "slimscope explorer keys"
echo "tmux-smoke: help ok"

if [ "$HOSTILE" = 1 ]; then
  # searching "hostile" opens hostile/ and the folders below it
  keys /
  wait_for "search paths (substring"
  keys -l "hostile"
  keys Enter
  wait_for "matching path"
  settle
  hostile=$(screen)
  for name in '[@click=app.quit()]x' '[link=x]y' '[link=http:/' 'x]y' 'a[/' ']b' 'esc-\x1b[31mred' \
    'new\nline' 'c1-\u009bx' 'bidi-\u202etxt.exe' 'bad-\xff-byte' 'link-\x1b]0;title\x07 -> esc-\x1b[31mred'; do
    grep -qF -- "$name" <<<"$hostile" || fail "hostile name not shown as inert text: $name"
  done
  keys Escape
  wait_gone "matching path"
  # Enter on the [@click=app.quit()]x row must not quit: find it with the search, then Enter twice
  keys /
  wait_for "search paths (substring"
  keys -l "[@click"
  keys Enter
  wait_for "matching path"
  settle
  keys j j
  wait_for "path /hostile/[@click=app.quit()]x"
  keys Enter
  settle
  keys Enter
  settle
  [ "$(flag alternate_on)" = 1 ] || fail "Enter on a hostile name ended the explorer"
  screen | grep -qF "path /hostile/[@click=app.quit()]x" || fail "the cursor left [@click=app.quit()]x"
  keys Escape
  wait_gone "matching path"
  echo "tmux-smoke: hostile names ok"
fi

keys q
check_restored
echo "tmux-smoke: q exits 0 and restores the terminal"

# --- run 2: ctrl+c right away (while loading, unless the image loads faster than the key arrives) --------
keys "clear" Enter
sleep 0.2
run_slimscope
wait_for_re "slimscope  reading|What need not ship" 20
keys C-c
check_restored 130
screen | grep -qF "slimscope: interrupted" || fail "ctrl+c did not report 'slimscope: interrupted'"
echo "tmux-smoke: ctrl+c at start exits 130 (interrupted) and restores the terminal"
echo "tmux-smoke: PASS $IMAGE"
