import os

# Tests run on the CPU, two cores; keep XLA from grabbing every thread for tiny programs.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
