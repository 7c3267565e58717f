#!/usr/bin/env bash
# Usage: [GPUS=8 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS=...] \
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
#
# Pre-emption safe. slurm signals the tasks 120 s before the time limit
# (--signal=USR1@120) and with SIGTERM at a pre-emption; train.py then
# finishes its iteration, saves iter_<N>.pth in WORK_DIR and exits with 143.
# - In a batch job (sbatch --requeue [--signal=B:USR1@120] \
#   tools/slurm_train.sh ...) the job is requeued (scontrol requeue) and the
#   requeued job resumes from the newest complete checkpoint of WORK_DIR by
#   itself.
# - Run from a login node (no job to requeue), the script starts the
#   training again (a new allocation), which resumes the same way;
#   MAX_RESTARTS (default 100) bounds the restarts.
# Any other exit status ends the job with that status.
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
SIGNAL_TIME=${SIGNAL_TIME:-120}
MAX_RESTARTS=${MAX_RESTARTS:-100}
PREEMPTED=143
if [ -z "$WORK_DIR" ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
  exit 2
fi
shift 4

has_checkpoint() {
  compgen -G "$WORK_DIR/epoch_*.pth" >/dev/null ||
    compgen -G "$WORK_DIR/iter_*.pth" >/dev/null
}

train() {
  # $1: extra train.py arguments (--resume on a restart); then the user's.
  local resume=$1
  shift
  PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
  srun -p "${PARTITION}" \
      --job-name="${JOB_NAME}" \
      --gres=gpu:"${GPUS_PER_NODE}" \
      --ntasks="${GPUS}" \
      --ntasks-per-node="${GPUS_PER_NODE}" \
      --cpus-per-task="${CPUS_PER_TASK}" \
      --kill-on-bad-exit=1 \
      --signal=USR1@"${SIGNAL_TIME}" \
      ${SRUN_ARGS} \
      "$PYTHON" -u "$(dirname "$0")/train.py" "${CONFIG}" \
      --work-dir="${WORK_DIR}" --launcher="slurm" $resume "$@" &
  SRUN_PID=$!
  # A signal to this script (sbatch --signal=B:USR1@120) interrupts the
  # wait: it is passed on to srun's tasks, and the wait goes on while they
  # save.
  while true; do
    wait "$SRUN_PID"
    STATUS=$?
    kill -0 "$SRUN_PID" 2>/dev/null || break
  done
  return "$STATUS"
}

forward() {
  [ -n "$SRUN_PID" ] && kill -s "$1" "$SRUN_PID" 2>/dev/null
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM

RESTARTS=0
RESUME=""
# A requeued batch job continues the run of its first start.
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] && has_checkpoint; then
  RESUME="--resume"
fi
while true; do
  train "$RESUME" "$@"
  STATUS=$?
  if [ "$STATUS" -ne "$PREEMPTED" ]; then
    exit "$STATUS"
  fi
  # Inside a batch job: requeue it (sbatch --requeue); the new start
  # resumes. Elsewhere (an interactive allocation cannot be requeued):
  # start the training again here.
  if [ -n "$SLURM_JOB_ID" ] && scontrol requeue "$SLURM_JOB_ID"; then
    echo "slurm_train.sh: training stopped by a signal; job" \
      "$SLURM_JOB_ID requeued, it resumes from $WORK_DIR." >&2
    exit "$STATUS"
  fi
  if [ "$RESTARTS" -ge "$MAX_RESTARTS" ]; then
    exit "$STATUS"
  fi
  RESTARTS=$((RESTARTS + 1))
  echo "slurm_train.sh: training stopped by a signal; starting it again" \
    "(restart $RESTARTS of at most $MAX_RESTARTS)." >&2
  RESUME=""
  if has_checkpoint; then
    RESUME="--resume"
  fi
done
