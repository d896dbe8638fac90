#!/usr/bin/env bash
# Four shards of one input with GNU parallel (on one machine, or on several with
# --sshlogin host1,host2,... and a shared folder): each shard K of 4 keeps its own journal
# recipients.shard-K-of-4.journal.sqlite; the account's rate limit is shared through the
# config's rate_backend. Re-running the same line resumes every shard where it stopped.
parallel --line-buffer --halt never -j 4 sms-cli send recipients.csv --config sms-cli.yaml --shard {}/4 --yes ::: 0 1 2 3
