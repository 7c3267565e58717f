#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NGPUS [train.py args]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT in the environment.
# Without GPUs, NGPUS processes run on the CPU (gloo backend).
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
if [ -z "$CONFIG" ] || [ -z "$GPUS" ]; then
  echo "usage: $0 CONFIG NGPUS [train.py args]" >&2
  exit 2
fi

# A run stopped by SIGTERM / SIGUSR1 (checkpoint saved) writes its status
# (143) here, and the processes end with 0: torchrun would report any other
# status as a failure with status 1.
STATUS_FILE=$(mktemp "${TMPDIR:-/tmp}/mmvan-status.XXXXXX")
trap 'rm -f "$STATUS_FILE"' EXIT

MMVAN_STOP_STATUS_FILE="$STATUS_FILE" \
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
STATUS=$?
if [ "$STATUS" -eq 0 ] && [ -s "$STATUS_FILE" ]; then
  STATUS=$(cat "$STATUS_FILE")
fi
exit "$STATUS"
