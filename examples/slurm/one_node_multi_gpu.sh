#!/bin/bash
# BEAD: distributed training on the GPUs of one node (DDP over NCCL, started by torchrun).
# Edit the #SBATCH lines, the environment and WS/PROJ, then: sbatch one_node_multi_gpu.sh
#SBATCH --job-name=bead-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1          # one launcher; torchrun starts one process per GPU
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --output=bead-train-%j.log

set -euo pipefail
WS=svj                               # workspace and project under $BEAD_WORKSPACES
PROJ=first
export BEAD_WORKSPACES=${BEAD_WORKSPACES:-$HOME/bead/workspaces}
source "$HOME/bead/.venv/bin/activate"    # the environment bead is installed in

GPUS=${SLURM_GPUS_ON_NODE:-4}
export OMP_NUM_THREADS=$(( ${SLURM_CPUS_PER_TASK:-16} / GPUS ))

# prepare_inputs once, in one process; then train on every GPU and score on rank 0.
bead -m prepare_inputs -p "$WS" "$PROJ" --no-progress
# A job that reached its time limit continues with -o resume (on any number of GPUs).
RESUME=()
[[ -f "$BEAD_WORKSPACES/$WS/$PROJ/output/models/last.pt" ]] && RESUME=(-o resume)
torchrun --standalone --nproc_per_node="$GPUS" -m bead -m train -p "$WS" "$PROJ" \
    --no-progress ${RESUME[@]+"${RESUME[@]}"}
bead -m chain -p "$WS" "$PROJ" -o detect_plot --no-progress
