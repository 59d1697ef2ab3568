"""`coralbay evaluate`: the shipped configs run for one model over many tasks, locally or on SLURM.

`plan` turns (model, tasks, data) into one job per task, `records` keeps each job's state on
disk (what makes a sweep resumable and lockable), `job` is what runs on the machine (eva as a
subprocess), `launch` runs the jobs locally or through submitit on SLURM and collects them.
Nothing here holds a second copy of the protocol: each job is `eva fit` / `eva predict_fit` on
the task's config with environment variables.
"""
