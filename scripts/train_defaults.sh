#!/usr/bin/env bash
# Train, evaluate and package the shipped default models end to end.
#
#   scripts/train_defaults.sh [WORK]        (default WORK=runs)
#
# 1. the photo corpus (scripts/fetch_photos.sh), downscaled to max side 1024;
# 2. the degradation classifier (configs/degnet-default.yaml) and its confusion matrix on the
#    held-out photos (the same 20% both models hold out);
# 3. the all-in-one restorer (configs/allinone-small.yaml) conditioned on that classifier;
# 4. both copied into src/irestore/assets/ (scripts/package_model.py);
# 5. the pool's specialists (configs/derain.yaml, ...), trained on the same photos and holdout,
#    and packaged (src/irestore/assets/derain, ...); a specialist is added here once it beats
#    its classical peers and the all-in-one model (README "Results").
# Each training run resumes where it stopped when its folder already holds a run.
# Environment: TRAIN_FLAGS adds flags to both trainings (e.g. "--device cuda --threads 16
# --batch-size 64" on a GPU); RESTORER_STEPS is the default step count to ship (pick it from
# the steps-vs-quality curve, README "Results"); PYTHON (default: python).
set -euo pipefail

work=${1:-runs}
python=${PYTHON:-python}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
flags=(${TRAIN_FLAGS:-})
# glibc returns large activation buffers to the OS after every step unless told not to;
# keeping them mapped halves CPU step time (no effect on CUDA)
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000

mkdir -p "$work"
"$here/fetch_photos.sh" "$work/photos"
"$python" "$here/resize_photos.py" "$work/photos" "$work/photos-1k" --max-side 1024 --min-factor tuxpaint-data=1.6 \
    --min-factor gcompris-qt-data=1.6

train() {  # train NAME CONFIG [flags...]
    local name=$1 config=$2
    shift 2
    if [[ -f "$work/$name/state.pt" ]]; then
        irestore train --resume "$work/$name" "$@" "${flags[@]}"
    else
        irestore train --config "$root/configs/$config" --dataset "folder:$work/photos-1k" --out "$work/$name" "$@" "${flags[@]}"
    fi
}

train degnet-default degnet-default.yaml
"$python" "$here/copy_holdout.py" "$work/photos-1k" "$work/photos-val" --val-fraction 0.2
"$python" "$root/benchmarks/classifier_eval.py" "$work/degnet-default/last" "$work/photos-val" \
    --per-type 40 --crop 384 --json "$work/degnet-default/eval.json"

train allinone-small allinone-small.yaml --classifier "$work/degnet-default/last"

# the classifier's calibrated image-level head on the frozen DegNet (resumable chunks)
"$python" "$here/train_classifier.py" cache "$work/head-cache" "$work/photos-1k" --exclude "$work/photos-val" \
    --backbone "$work/degnet-default/last" --samples 18000
"$python" "$here/train_classifier.py" fit "$work/degnet-head" "$work/head-cache" --backbone "$work/degnet-default/last"

"$python" "$here/package_model.py" classifier "$work/degnet-head" degnet-default
"$python" "$here/package_model.py" restorer "$work/allinone-small/last" allinone-small \
    --classifier degnet-default --sampler posterior --steps "${RESTORER_STEPS:-4}"

# specialists for the pool (long CPU runs: each resumes where it stopped)
train derain derain.yaml
# the EMA weights that validated best; a direct regressor runs one pass
"$python" "$here/package_model.py" restorer "$work/derain/best" derain --steps 1
train lowlight lowlight.yaml
"$python" "$here/package_model.py" restorer "$work/lowlight/best" lowlight --steps 1
train dehaze dehaze.yaml
"$python" "$here/package_model.py" restorer "$work/dehaze/best" dehaze --steps 1
