%% A loop as its callers see it: what a caller needs to submit a call to
%% one loop without going through the worker's mailbox. Private to the
%% loop's owner (pyport_calls, which documents the tables) and its worker
%% (pyport_worker, which makes it and (re)registers it when it starts);
%% every other module holds it as the opaque pyport_calls:loop().
-record(py_loop, {
    %% An integer for the default pool, {Pool, I} for a named pool's.
    index :: pyport_calls:loop_index(),
    worker :: pid(),
    port :: port(),
    %% {TaskRef, CallerPid}; public, so callers insert before they send.
    pending :: ets:tid(),
    %% {{CallerPid, TaskRef}} for every task in `pending` whose caller is
    %% still waiting (not yet cancelled); ordered by caller, so a dead
    %% caller's tasks are found by key prefix instead of a scan of
    %% `pending`. Maintained by callers and worker alike.
    by_caller :: ets:tid(),
    %% {CallerPid, MonitorRef}; callers check it to ask for a monitor once.
    monitored :: ets:tid(),
    max_pending :: pos_integer() | infinity,
    %% The port skips larger packets without knowing their task id, so
    %% callers refuse them before sending.
    max_packet :: pos_integer(),
    %% How long Python has to answer a cancel before the worker kills the
    %% port; callers stamp their cancelled tasks with it.
    cancel_grace_ms :: non_neg_integer(),
    os_pid :: integer() | undefined,
    info :: map(),
    %% Object handles (pyport_handle): this port's incarnation, which each of
    %% its #py_obj{} carries, and who owns which handle.
    handles :: pyport_handle:tables() | undefined,
    %% {StreamRef, Credit}: items the port may still send on each stream
    %% (py_stream adds what its consumer grants, the worker charges what
    %% arrives), so that a port cannot send past the consumer's window.
    streams :: ets:tid() | undefined,
    %% Task latency and queue time (pyport_ops_stats), written by callers.
    stats :: pyport_ops_stats:ref() | undefined
}).
