#!/usr/bin/env bash
# The bundled model's whole recipe, end to end, as recorded in docs/QUALITY.md: a 32-channel
# teacher, a 16-channel student distilled from it, then three 800-step fine-tunes (stable video,
# edges, alias-free ReLUs) and two more with the head upsampled by Lanczos-3 instead of bilinear.
# Run from the repository root after `make .venv/.dev`:
#
#   bash docs/model/train_default.sh runs/recipe      # ~70 min on two cores on a fast day
#
# Each stage's checkpoint is in OUT/<stage>/; the model is exported to OUT/default.onnx (copy it
# and its .json/.fp16.onnx/.generator.pt to streamer/models/ to ship it). Stage times go to
# OUT/times.tsv. Stops at the first failing stage; a stage already finished is not rerun.
#
# For other styles, `stylecast train --recipe --content DIR --style … --out DIR` runs the same
# chain (training/recipe.py; tests/test_train_recipe.py checks its stages against the configs
# this script's runs recorded in docs/model/). This script stays the record of the bundled
# model's run and of the variants below.
#
# Environment: TEACHER=GEN.pt distils from an existing teacher (e.g. the bundled model's,
# docs/model/teacher/teacher.generator.pt) instead of training one; TEMPORAL=0 trains every
# stage after the teacher without the temporal loss: the ablation in docs/QUALITY.md.
# HALF_RES=N adds the ½-res decoder stage (N channels) from the student on, and HEAD_BLUR_TAPS=5
# widens the ¼-res head's blur in the fine-tunes (variant HRS in docs/QUALITY.md; both unset for
# the bundled model).
set -euo pipefail

OUT=${1:?usage: train_default.sh OUT_DIR}
TEACHER=${TEACHER:-}
TEMPORAL=${TEMPORAL:-1}
case $TEMPORAL in
    1) W_STUDENT=20 W_FT=500 ;;
    0) W_STUDENT=0 W_FT=0 ;;
    *) echo "TEMPORAL must be 1 or 0, not '$TEMPORAL'" >&2; exit 2 ;;
esac
HALF_RES=${HALF_RES:-0}
HEAD_BLUR_TAPS=${HEAD_BLUR_TAPS:-3}
# checked here, not by the first stage that reads them: that is the stable-video one, half an hour in
if [[ ! $HALF_RES =~ ^[0-9]+$ ]]; then echo "HALF_RES must be a channel count (0 for none), not '$HALF_RES'" >&2; exit 2; fi
if [[ $HEAD_BLUR_TAPS != 3 && $HEAD_BLUR_TAPS != 5 ]]; then echo "HEAD_BLUR_TAPS must be 3 or 5, not '$HEAD_BLUR_TAPS'" >&2; exit 2; fi
if [[ -n $TEACHER && ! -f $TEACHER ]]; then echo "TEACHER=$TEACHER: no such file" >&2; exit 2; fi
DATA=${DATA:-../shared/data}
ST="$DATA/styles"
BIN=${STYLECAST:-.venv/bin/stylecast}
STYLES=(--style "$ST/hokusai_great_wave.jpg" --style "$ST/kandinsky_composition_viii.jpg"
        --style "$ST/van_gogh_night_cafe.jpg" --style "$ST/cartoon")
# --no-mask-background: the bundled model was trained with the cartoon set's white backgrounds in its targets
COMMON=(--content "$DATA/content" "${STYLES[@]}" --crop 160 --batch 4 --seed 0 --no-mask-background)
ARCH=(--half-res "$HALF_RES")
FT=(--width 16 --blocks 3 "${ARCH[@]}" --antialias --smooth-head --head-blur-taps "$HEAD_BLUR_TAPS" --w-temporal "$W_FT" --temporal-blur 1.5
    --temporal-margin 16 --sample-every 400 --ckpt-every 100)
EDGE=(--temporal-noise 0 --w-edge 8 --w-edge-style kandinsky_composition_viii=30 --w-edge-style cartoon=100)
mkdir -p "$OUT"

stage() {  # stage NAME CMD…: run CMD once, timing it; skipped when OUT/NAME/.done exists
    local name=$1; shift
    if [[ -e "$OUT/$name/.done" ]]; then echo "skip $name (done)"; return; fi
    local t0; t0=$(date +%s)
    "$@"
    touch "$OUT/$name/.done"
    printf '%s\t%s s\n' "$name" "$(( $(date +%s) - t0 ))" | tee -a "$OUT/times.tsv"
}

# 1. teacher: width 32, 5000 steps, temporal 2 (docs/model/teacher/train_config.json)
if [[ -z $TEACHER ]]; then
    stage teacher "$BIN" train "${COMMON[@]}" --steps 5000 --out "$OUT/teacher"
    "$BIN" export "$OUT"/teacher/0*/checkpoint.pt "$OUT/teacher.onnx"
    TEACHER=$OUT/teacher.generator.pt
fi

# 2. student distilled from it: width 16, 3000 steps, temporal 20 (train_config_stage1.json)
stage student "$BIN" train "${COMMON[@]}" --teacher "$TEACHER" --width 16 --blocks 3 "${ARCH[@]}" \
    --steps 3000 --w-temporal "$W_STUDENT" --sample-every 1000 --out "$OUT/student"

# 3. stable-video fine-tune, resumed to 3800 (train_config_stage2.json)
if [[ ! -e "$OUT/video/checkpoint.pt" ]]; then mkdir -p "$OUT/video" && cp "$OUT"/student/0*/checkpoint.pt "$OUT/video/"; fi
stage video "$BIN" train "${COMMON[@]}" "${FT[@]}" --resume "$OUT/video" --steps 3800

# 4. edge fine-tune, resumed to 4600 (train_config_stage3.json): the model called L
if [[ ! -e "$OUT/edge/checkpoint.pt" ]]; then mkdir -p "$OUT/edge" && cp "$OUT/video/checkpoint.pt" "$OUT/edge/"; fi
stage edge "$BIN" train "${COMMON[@]}" "${FT[@]}" "${EDGE[@]}" --resume "$OUT/edge" --steps 4600

# 5. alias-free fine-tune from L's EMA weights, 800 steps (train_config_stage4.json)
stage alias_free "$BIN" train "${COMMON[@]}" "${FT[@]}" "${EDGE[@]}" --init "$OUT/edge/checkpoint.pt" \
    --alias-free --alias-free-quarter --steps 800 --out "$OUT/alias_free"

# 6. Lanczos head: two 800-step fine-tunes, each from the previous one's EMA weights with a fresh
# discriminator (train_config_stage5.json, train_config.json)
LZ=("${COMMON[@]}" "${FT[@]}" "${EDGE[@]}" --alias-free --alias-free-quarter --head-lanczos --steps 800)
stage lanczos "$BIN" train "${LZ[@]}" --init "$(ls "$OUT"/alias_free/0*/checkpoint.pt)" --out "$OUT/lanczos"
stage lanczos2 "$BIN" train "${LZ[@]}" --init "$(ls "$OUT"/lanczos/0*/checkpoint.pt)" --out "$OUT/lanczos2"
"$BIN" export "$OUT"/lanczos2/0*/checkpoint.pt "$OUT/default.onnx"
echo "wrote $OUT/default.onnx; stage times in $OUT/times.tsv"
