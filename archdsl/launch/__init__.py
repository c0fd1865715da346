"""Launch files for the schedulers clusters run: SLURM job arrays and Kubernetes Indexed Jobs.

archdsl never schedules anything itself: these generators write what the scheduler needs to place one
``archdsl worker`` per GPU against one shared study, and the scheduler does the rest.
"""
