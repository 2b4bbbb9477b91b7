#!/usr/bin/env bash
# What a newcomer gets from `make run` on a fresh checkout of this repository, on this machine:
#
#  A. `make run` on a fresh clone, on the real system. If Qt's xcb plugin lacks system
#     libraries here, it must exit non-zero with PhotoAtlas's message naming them and the
#     install command (not Qt's abort). Otherwise, under Xvfb, a window titled "PhotoAtlas"
#     must appear (checked with xwininfo; a screenshot of the display is saved).
#  B. A missing library, SIMULATED: a fake `ldd` first on PATH reports $SIMULATE_MISSING
#     (default libxcb-cursor.so.0) as "not found"; nothing is uninstalled. `make run` must
#     exit non-zero with the message naming it, and no window may appear.
#
# Usage: tests/desktop/check_fresh_window.sh        (from the repository root)
#   WORK=/tmp/dir          where the clone, its venv, HOME and logs go (default: mktemp)
#   SEED_VENV=/path/.venv  an existing PhotoAtlas venv whose packages the fresh venv sees
#                          through a .pth file, so that `make run` installs only PhotoAtlas
#                          itself (no torch download); default ./.venv if it exists.
#                          SEED_VENV= (empty) makes `make run` install everything from PyPI.
# Needs git, make, python3; Xvfb and xwininfo for the window
# (Debian/Ubuntu: sudo apt-get install xvfb x11-utils). Commits only: the clone is of HEAD.
set -u
REPO=$(git rev-parse --show-toplevel) || exit 2
WORK=${WORK:-$(mktemp -d /tmp/photoatlas-fresh.XXXXXX)}
SEED_VENV=${SEED_VENV-$REPO/.venv}
SIMULATE_MISSING=${SIMULATE_MISSING:-libxcb-cursor.so.0}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
CLONE=$WORK/photoatlas
FAILED=0
XVFB_PID=""
RUN_PID=""

say() { printf '%s\n' "$*"; }
fail() { say "FAIL: $*"; FAILED=1; }

cleanup() {
    [ -n "$RUN_PID" ] && kill -- "-$RUN_PID" 2>/dev/null
    [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null
}
trap cleanup EXIT

mkdir -p "$WORK/home" "$WORK/fakebin"
git clone --quiet "$REPO" "$CLONE" || exit 2
say "fresh clone of $(git -C "$CLONE" rev-parse --short HEAD) in $CLONE"

if [ -n "$SEED_VENV" ] && [ -x "$SEED_VENV/bin/python" ]; then
    "$SEED_VENV/bin/python" -m venv "$CLONE/.venv" || exit 2
    site=$("$SEED_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    mine=$("$CLONE/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$site" > "$mine/_seed_packages.pth"
    touch -d '2000-01-01' "$CLONE/.venv"  # older than pyproject.toml: make still installs
    say "venv seeded with the packages of $SEED_VENV (make run installs PhotoAtlas itself)"
else
    say "no seed venv: make run installs everything from PyPI"
fi

# A private HOME: the library, settings and caches of this run stay in $WORK.
export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config XDG_DATA_HOME=$WORK/home/.local/share \
    XDG_CACHE_HOME=$WORK/home/.cache
unset QT_QPA_PLATFORM WAYLAND_DISPLAY XDG_SESSION_TYPE

DISPLAY_NUM=""
if command -v Xvfb >/dev/null && command -v xwininfo >/dev/null; then
    for n in $(seq 90 120); do
        [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ] || { DISPLAY_NUM=$n; break; }
    done
    Xvfb ":$DISPLAY_NUM" -screen 0 1400x900x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
    XVFB_PID=$!
    for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] && break; sleep 0.2; done
    export DISPLAY=":$DISPLAY_NUM"
    say "Xvfb on $DISPLAY"
else
    unset DISPLAY
    say "no Xvfb or xwininfo here (sudo apt-get install xvfb x11-utils): the window is not checked"
fi

# A top-level window whose title starts with PhotoAtlas, at least 400x300 (Qt also makes a
# 1x1 helper window with that name).
main_windows() {
    xwininfo -display ":$DISPLAY_NUM" -root -tree 2>/dev/null | grep '"PhotoAtlas' \
        | grep -E '[[:space:]]([4-9][0-9]{2}|[0-9]{4,})x([3-9][0-9]{2}|[0-9]{4,})\+'
}
window_shown() { [ -n "$DISPLAY_NUM" ] && main_windows >/dev/null; }

# --- A: the real system -----------------------------------------------------------------
say ""
say "== A. make run on the real system"
setsid make -C "$CLONE" run >"$WORK/run-real.log" 2>&1 &
RUN_PID=$!
outcome=timeout
for _ in $(seq "$((RUN_TIMEOUT * 2))"); do
    if window_shown; then outcome=window; break; fi
    if ! kill -0 "$RUN_PID" 2>/dev/null; then outcome=exited; break; fi
    sleep 0.5
done
case $outcome in
window)
    sleep 3  # let the first paint land before the screenshot
    QT_QPA_PLATFORM=xcb "$CLONE/.venv/bin/python" -c "
import sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(['shot'])
sys.exit(0 if app.primaryScreen().grabWindow(0).save('$WORK/window.png') else 1)" \
        && say "screenshot of the display: $WORK/window.png"
    say "PASS: a PhotoAtlas window appeared on $DISPLAY:"
    main_windows
    kill -- "-$RUN_PID" 2>/dev/null; wait "$RUN_PID" 2>/dev/null; RUN_PID=""
    ;;
exited)
    wait "$RUN_PID"; rc=$?; RUN_PID=""
    if grep -q "PhotoAtlas cannot open its window" "$WORK/run-real.log"; then
        if [ "$rc" -ne 0 ] && ! grep -q "Could not load the Qt platform plugin" "$WORK/run-real.log"
        then say "PASS (real): no window possible here, and make run said why (exit $rc):"
        else fail "make run exited $rc; message and Qt's abort: see $WORK/run-real.log"; fi
        sed -n '/PhotoAtlas cannot open its window/,$p' "$WORK/run-real.log"
    else
        fail "make run exited ($rc) without a window and without saying why:"
        tail -20 "$WORK/run-real.log"
    fi
    ;;
timeout)
    fail "no window within ${RUN_TIMEOUT}s; log: $WORK/run-real.log"; tail -20 "$WORK/run-real.log"
    ;;
esac

# --- B: a missing library, simulated ------------------------------------------------------
say ""
say "== B. make run with $SIMULATE_MISSING missing (SIMULATED by a fake ldd on PATH)"
real_ldd=$(command -v ldd)
cat >"$WORK/fakebin/ldd" <<FAKE
#!/bin/sh
# The real ldd's answer with $SIMULATE_MISSING unresolved, as on a machine without it.
"$real_ldd" "\$@" | sed -E 's#^([[:space:]]*${SIMULATE_MISSING//./\\.})[[:space:]]+=>.*#\1 => not found#'
FAKE
chmod +x "$WORK/fakebin/ldd"
PATH="$WORK/fakebin:$PATH" timeout "$RUN_TIMEOUT" make -C "$CLONE" run >"$WORK/run-missing.log" 2>&1
rc=$?
if [ "$rc" -ne 0 ] && grep -q "$SIMULATE_MISSING" "$WORK/run-missing.log" \
    && grep -q "PhotoAtlas cannot open its window" "$WORK/run-missing.log" \
    && ! grep -q "Could not load the Qt platform plugin" "$WORK/run-missing.log" \
    && ! window_shown; then
    say "PASS: make run exited $rc with no window and said:"
else
    fail "make run exited $rc; expected PhotoAtlas's message naming $SIMULATE_MISSING:"
fi
sed -n '/PhotoAtlas cannot open its window/,$p' "$WORK/run-missing.log"

say ""
[ "$FAILED" -eq 0 ] && say "fresh-window check passed ($WORK)" || say "fresh-window check FAILED ($WORK)"
exit "$FAILED"
