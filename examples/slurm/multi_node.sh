#!/bin/bash
# BEAD: distributed training over several nodes: srun starts one torchrun per node, the
# torchrun agents meet at a c10d rendezvous on the first node, and each starts one process per
# GPU (DDP over NCCL). Edit the #SBATCH lines, the environment and WS/PROJ, then:
#   sbatch multi_node.sh
# The workspace must be on a file system that every node sees (only rank 0 writes to it).
#SBATCH --job-name=bead-train-multinode
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1          # one torchrun per node
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=08:00:00
#SBATCH --output=bead-train-%j.log

set -euo pipefail
WS=svj
PROJ=first
export BEAD_WORKSPACES=${BEAD_WORKSPACES:-$HOME/bead/workspaces}
source "$HOME/bead/.venv/bin/activate"

GPUS=${SLURM_GPUS_ON_NODE:-4}
export OMP_NUM_THREADS=$(( ${SLURM_CPUS_PER_TASK:-16} / GPUS ))
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
PORT=29500
# export NCCL_SOCKET_IFNAME=ib0       # the interface the nodes reach each other on, if needed

bead -m prepare_inputs -p "$WS" "$PROJ" --no-progress
RESUME=()
[[ -f "$BEAD_WORKSPACES/$WS/$PROJ/output/models/last.pt" ]] && RESUME=(-o resume)
srun --ntasks-per-node=1 torchrun \
    --nnodes="$SLURM_NNODES" --nproc_per_node="$GPUS" \
    --rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d --rdzv_endpoint="$HEAD:$PORT" \
    -m bead -m train -p "$WS" "$PROJ" --no-progress ${RESUME[@]+"${RESUME[@]}"}
bead -m chain -p "$WS" "$PROJ" -o detect_plot --no-progress
