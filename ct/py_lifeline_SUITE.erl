%% No orphans: the port's OS process and every process Python started
%% (subprocess.Popen, asyncio subprocesses, their own children) end with the
%% port, however the port ends: killed by a signal, killed by its worker as
%% unresponsive, closed because its worker died, stopped cleanly, or left
%% behind by a BEAM that was killed -9.
-module(py_lifeline_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(F, pyport_faults).
%% Liveness bound for "is gone" after an event inside this node.
-define(GONE, 10000).

-spec all() -> [atom()].
all() ->
    [port_sigkill_takes_children, unresponsive_kill_takes_children,
     worker_death_takes_children, clean_stop_takes_children,
     beam_kill_leaves_no_port_tree].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(beam_kill_leaves_no_port_tree, Config) ->
    Config;
init_per_testcase(_, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 2}, {cancel_grace_ms, 500}]),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    %% Whatever a failed case left running.
    Leftovers = case get(pids) of
                    undefined -> [];
                    Pids -> Pids
                end,
    ok = pyport_ct_os:kill([P || P <- Leftovers, pyport_ct_os:alive(P)]),
    pyport_ct:stop().

-spec port_sigkill_takes_children() -> [{doc, string()}].
port_sigkill_takes_children() -> [{doc, "After SIGKILL of the port process alone, no subprocess Python started (Popen, asyncio subprocess, a shell's own child) survives: the worker kills the port's process group."}].
-spec port_sigkill_takes_children(ct_suite:ct_config()) -> term().
port_sigkill_takes_children(_) ->
    {OsPid, Tree} = spawn_children(1),
    ok = pyport_ct_os:sigkill(OsPid),
    ok = pyport_ct_os:await_gone(Tree, ?GONE),
    serves_again(1, OsPid).

-spec unresponsive_kill_takes_children() -> [{doc, string()}].
unresponsive_kill_takes_children() -> [{doc, "When the worker kills a port stuck past its deadline plus cancel_grace_ms, the port's subprocesses die with it."}].
-spec unresponsive_kill_takes_children(ct_suite:ct_config()) -> term().
unresponsive_kill_takes_children(_) ->
    {OsPid, Tree} = spawn_children(1),
    ?assertEqual({error, timeout},
                 py_event_loop:run(?F, blocking_sleep, [600], #{timeout => 200})),
    ok = pyport_ct_os:await_gone(Tree, ?GONE),
    serves_again(1, OsPid).

-spec worker_death_takes_children() -> [{doc, string()}].
worker_death_takes_children() -> [{doc, "When the worker dies, its port closes; the port sees EOF on fd 3 and exits taking its subprocesses along, even while Python is stuck in a C call."}].
-spec worker_death_takes_children(ct_suite:ct_config()) -> term().
worker_death_takes_children(_) ->
    {OsPid, Tree} = spawn_children(1),
    ok = py_event_loop:spawn_task(?F, ctypes_sleep, [600]),
    #{worker := Worker} = pyport_ct:loop_stats(1),
    exit(Worker, kill),
    ok = pyport_ct_os:await_gone(Tree, ?GONE),
    serves_again(1, OsPid).

-spec clean_stop_takes_children() -> [{doc, string()}].
clean_stop_takes_children() -> [{doc, "Stopping the application ends every port and every subprocess Python started on any loop."}].
-spec clean_stop_takes_children(ct_suite:ct_config()) -> term().
clean_stop_takes_children(_) ->
    {_, Tree1} = spawn_children(1),
    {_, Tree2} = spawn_children(2),
    ok = application:stop(pyport),
    ok = pyport_ct_os:await_gone(Tree1 ++ Tree2, ?GONE).

-spec beam_kill_leaves_no_port_tree() -> [{doc, string()}].
beam_kill_leaves_no_port_tree() -> [{doc, "kill -9 of a separate BEAM running a pool with busy loops, a blocking C call and subprocesses: within 1 s no process of any port's tree remains (parent-death signal kills each port's group)."}].
-spec beam_kill_leaves_no_port_tree(ct_suite:ct_config()) -> term().
beam_kill_leaves_no_port_tree(Config) ->
    Out = filename:join(?config(priv_dir, Config), "node.term"),
    Node = start_node(Out),
    {BeamPid, PortPids, Kids} = await_report(Node, Out),
    Tree = lists:usort(lists:append([pyport_ct_os:tree(P) || P <- PortPids])),
    put(pids, [BeamPid | Tree]),
    %% The ports run, and everything Python started is in their trees.
    ?assertEqual(2, length(PortPids)),
    [?assert(pyport_ct_os:alive(P)) || P <- PortPids],
    [?assert(lists:member(K, Tree)) || K <- Kids],
    ?assert(length(Tree) >= 2 + length(Kids) + 2),
    ok = pyport_ct_os:sigkill(BeamPid),
    receive {Node, {exit_status, _}} -> ok after ?GONE -> ct:fail(node_did_not_die) end,
    %% The issue's bound: a second.
    ok = pyport_ct_os:await_gone(Tree, 1000).

%% Internal.

%% Starts two subprocesses and a shell with a child of its own from loop
%% Index; returns the port's OS pid and its process tree (port included).
-spec spawn_children(pos_integer()) -> {integer(), [integer()]}.
spawn_children(Index) ->
    Loop = {pyport_loop, Index},
    #{os_pid := OsPid} = pyport_ct:loop_stats(Index),
    {ok, Popen} = py_event_loop:run(Loop, ?F, spawn_sleep, [], #{}),
    {ok, Async} = py_event_loop:run(Loop, ?F, spawn_sleep_asyncio, [], #{}),
    {ok, Shell} = py_event_loop:run(Loop, ?F, spawn_shell_tree, [], #{}),
    %% The shell starts its own children by itself.
    ok = pyport_ct:wait_until(fun() -> length(pyport_ct_os:descendants(Shell)) >= 2 end, 5000),
    Tree = pyport_ct_os:tree(OsPid),
    [?assert(lists:member(P, Tree)) || P <- [Popen, Async, Shell]],
    ?assert(length(Tree) >= 6),
    put(pids, Tree ++ case get(pids) of undefined -> []; Ps -> Ps end),
    {OsPid, Tree}.

-spec serves_again(pos_integer(), integer()) -> ok.
serves_again(Index, OldOsPid) ->
    _ = pyport_ct:await_restart(Index, OldOsPid),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
    ok.

%% A separate node (its own OS process) that runs a pool of two loops,
%% starts subprocesses on both, gets loop 1 spinning in Python and loop 2
%% blocked in a C call, and writes {BeamOsPid, PortOsPids, ChildPids} to Out.
-spec start_node(file:filename()) -> port().
start_node(Out) ->
    Erl = os:find_executable("erl"),
    Ebin = filename:dirname(code:which(pyport_worker)),
    Code = lists:flatten(io_lib:format(
      "application:load(pyport),"
      "ok = application:set_env(pyport, event_loop_pool_size, 2),"
      "ok = application:set_env(pyport, python_path, [~p]),"
      "{ok, _} = application:ensure_all_started(pyport),"
      "Kids = [begin {ok, K} = py_event_loop:run({pyport_loop, I}, pyport_faults, F, [], #{}), K end"
      "        || I <- [1, 2], F <- [spawn_sleep, spawn_sleep_asyncio, spawn_shell_tree]],"
      "ok = py_event_loop:spawn_task({pyport_loop, 1}, pyport_faults, busy_loop, [], #{}),"
      "ok = py_event_loop:spawn_task({pyport_loop, 2}, pyport_faults, ctypes_sleep, [1000], #{}),"
      "timer:sleep(500),"
      "#{loops := Ls} = py_event_loop_pool:get_stats(),"
      "ok = file:write_file(~p, term_to_binary({list_to_integer(os:getpid()),"
      "                                         [P || #{os_pid := P} <- Ls], Kids})),"
      "receive never -> ok end.",
      [pyport_ct:helpers_dir(), Out])),
    open_port({spawn_executable, Erl},
              [{args, ["-noshell", "-noinput", "-pa", Ebin, "-eval", Code]},
               exit_status, stderr_to_stdout, binary]).

-spec await_report(port(), file:filename()) -> {integer(), [integer()], [integer()]}.
await_report(Node, Out) ->
    Deadline = erlang:monotonic_time(millisecond) + 30000,
    await_report(Node, Out, Deadline).

-spec await_report(port(), file:filename(), integer())
    -> {integer(), [integer()], [integer()]}.
await_report(Node, Out, Deadline) ->
    receive
        {Node, {data, Text}} ->
            ct:pal("node: ~ts", [Text]),
            await_report(Node, Out, Deadline);
        {Node, {exit_status, S}} ->
            ct:fail({node_exited, S})
    after 50 ->
        case file:read_file(Out) of
            {ok, Bin} when byte_size(Bin) > 0 ->
                binary_to_term(Bin);
            _ ->
                case erlang:monotonic_time(millisecond) > Deadline of
                    true -> ct:fail(node_did_not_report);
                    false -> await_report(Node, Out, Deadline)
                end
        end
    end.
