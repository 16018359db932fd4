"""A history checker for replikit over real local PostgreSQL clusters.

Sessions drive ``replikit.pg.ReplicatedDatabase`` (and ``PsycopgRouter``) against a
``replikit.testing.LocalCluster`` while a fault schedule kills, stops, restarts and slows
nodes; every operation goes into a history, and pure checkers judge the history afterwards
(``checkers``). Run ``python -m tests.checker --help`` from the repository root.
"""
