%% `make profile`: where one task's CPU goes (docs/performance.md, "CPU
%% per task"). Runs one scenario of bench/pyport_bench.erl on a pool of
%% one loop, repeatedly for a few seconds, under one tool at a time:
%%
%%   cpu    user + system CPU per task of this node and of the port
%%   msacc  microstate accounting of every runtime thread
%%   eprof  time per Erlang function, by process (caller, worker, other)
%%   split  CPU of the submit, worker and receive halves, measured apart
%%   perf   `perf record` on the node (with +JPperf, Erlang functions by
%%          name) and on the port, then the top symbols of each
%%
%% PROFILE_SCENARIO: fire (fire-and-collect 10k, the default), conc (50
%% processes x 200 tasks), seq (sequential run), mib (1 MiB echo).
%% PROFILE_TOOLS: a comma-separated subset of the tools above (default all).
%% PROFILE_SECONDS: how long each tool's run lasts (default 5).
%% PROFILE_TARGET: a checkout whose priv/pyport to profile (default: this one).
-module(pyport_profile).

%% API.
-export([main/0]).
-export([nop/1, cpu_us/1]).

-define(PY, bench_tasks).

%% API.

-spec main() -> no_return().
main() ->
    try run() of
        ok -> halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "profile failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(1)
    end.

%% Internals.

run() ->
    ok = logger:set_primary_config(level, warning),
    Root = filename:absname("."),
    ok = application:load(pyport),
    ok = application:set_env(pyport, python_path, [filename:join(Root, "bench/python")]),
    %% PROFILE_TARGET: the checkout whose port program runs (as BENCH_TARGET).
    Target = filename:absname(os:getenv("PROFILE_TARGET", Root)),
    ok = application:set_env(pyport, executable, filename:join(Target, "priv/pyport")),
    ok = application:set_env(pyport, event_loop_pool_size, 1),
    {ok, _} = application:ensure_all_started(pyport),
    put(cpu_meter, pyport_cpu:start()),
    Scenario = os:getenv("PROFILE_SCENARIO", "fire"),
    Seconds = list_to_integer(os:getenv("PROFILE_SECONDS", "5")),
    Tools = string:lexemes(os:getenv("PROFILE_TOOLS", "cpu,split,msacc,eprof,perf"), ","),
    Round = scenario(Scenario),
    [#{os_pid := PortPid}] = maps:get(loops, py_event_loop_pool:get_stats()),
    io:format("~n== profile: scenario ~s, ~p s per tool, node ~s, port ~p ==~n",
              [Scenario, Seconds, os:getpid(), PortPid]),
    _ = repeat(Round, 1000),
    [tool(T, Round, Seconds, PortPid) || T <- Tools],
    ok = application:stop(pyport).

%% One round of a scenario; returns the number of tasks it ran.
scenario("fire") ->
    fun() ->
        Refs = [py_event_loop:create_task(?PY, echo, [I]) || I <- lists:seq(1, 10000)],
        lists:foreach(fun(R) -> {ok, _} = py_event_loop:await(R, infinity) end, Refs),
        10000
    end;
scenario("conc") ->
    fun() ->
        Parent = self(),
        Pids = [spawn_link(fun() ->
                    lists:foreach(fun(I) -> {ok, I} = py_event_loop_pool:run(?PY, echo, [I]) end,
                                  lists:seq(1, 200)),
                    Parent ! {done, self()}
                end) || _ <- lists:seq(1, 50)],
        [receive {done, P} -> ok end || P <- Pids],
        10000
    end;
scenario("seq") ->
    fun() ->
        lists:foreach(fun(I) -> {ok, I} = py_event_loop:run(?PY, echo, [I], #{}) end,
                      lists:seq(1, 2000)),
        2000
    end;
scenario("mib") ->
    Bin = binary:copy(<<"x">>, 1 bsl 20),
    fun() ->
        lists:foreach(fun(_) -> {ok, _} = py_event_loop:run(?PY, echo, [Bin], #{timeout => 60000}) end,
                      lists:seq(1, 20)),
        20
    end.

%% Runs rounds for at least Ms milliseconds; returns the tasks run.
repeat(Round, Ms) ->
    Until = erlang:monotonic_time(millisecond) + Ms,
    repeat(Round, Until, 0).

repeat(Round, Until, N) ->
    case erlang:monotonic_time(millisecond) >= Until of
        true -> N;
        false -> repeat(Round, Until, N + Round())
    end.

tool("cpu", Round, Seconds, PortPid) ->
    Io0 = [syscalls(P) || P <- [os:getpid(), PortPid]],
    [B0, P0] = pyport_cpu:read(get(cpu_meter), [self, PortPid]),
    T0 = erlang:monotonic_time(microsecond),
    N = repeat(Round, Seconds * 1000),
    T1 = erlang:monotonic_time(microsecond),
    [B1, P1] = pyport_cpu:read(get(cpu_meter), [self, PortPid]),
    Io1 = [syscalls(P) || P <- [os:getpid(), PortPid]],
    [{BR, BW}, {PR, PW}] = [{(R1 - R0) / N, (W1 - W0) / N} || {{R0, W0}, {R1, W1}} <- lists:zip(Io0, Io1)],
    io:format("~n-- cpu: ~p tasks, ~.1f tasks/s; per task: BEAM ~.2f us, port ~.2f us, total ~.2f us~n"
              "   read/write system calls per task: BEAM ~.3f / ~.3f, port ~.3f / ~.3f~n",
              [N, N * 1.0e6 / (T1 - T0), (B1 - B0) / N, (P1 - P0) / N, (B1 - B0 + P1 - P0) / N,
               BR, BW, PR, PW]);
tool("msacc", Round, Seconds, _PortPid) ->
    _ = erlang:system_flag(microstate_accounting, reset),
    true = erlang:system_flag(microstate_accounting, true) =/= undefined,
    N = repeat(Round, Seconds * 1000),
    Stats = erlang:statistics(microstate_accounting),
    _ = erlang:system_flag(microstate_accounting, false),
    io:format("~n-- msacc: ~p tasks; wall-clock us per task by thread type and state (under 0.05 us left out)~n", [N]),
    Types = lists:usort([T || #{type := T} <- Stats]),
    lists:foreach(fun(Type) ->
        Threads = [C || #{type := T, counters := C} <- Stats, T =:= Type],
        Sum = lists:foldl(fun(C, Acc) -> maps:fold(fun(K, V, A) -> maps:update_with(K, fun(X) -> X + V end, V, A) end, Acc, C) end,
                          #{}, Threads),
        %% msacc counts wall time in perf_counter units: on a loaded
        %% machine a thread preempted by the kernel keeps counting.
        Busy = [{S, erlang:convert_time_unit(V, perf_counter, nanosecond) / 1000 / N}
                || {S, V} <- maps:to_list(Sum), S =/= sleep],
        Shown = [io_lib:format("~p ~.2f", [S, U]) || {S, U} <- lists:reverse(lists:keysort(2, Busy)), U >= 0.05],
        case Shown of
            [] -> ok;
            _ -> io:format("  ~-10s x~p: ~s~n", [Type, length(Threads), lists:join(", ", Shown)])
        end
    end, Types);
tool("eprof", Round, Seconds, _PortPid) ->
    {ok, _} = eprof:start(),
    Overhead = eprof_overhead(),
    Worker = whereis_worker(),
    profiling = eprof:start_profiling(erlang:processes(), {'_', '_', '_'}, [set_on_spawn]),
    N = repeat(Round, Seconds * 1000),
    profiling_stopped = eprof:stop_profiling(),
    io:format("~n-- eprof: ~p tasks; eprof adds ~.2f us to every traced call, subtracted below~n",
              [N, Overhead]),
    Roles = [{"worker", fun(P) -> P =:= Worker end}],
    eprof_by_role(Roles, N, Overhead),
    stopped = eprof:stop(),
    ok;
tool("split", _Round, Seconds, PortPid) ->
    split_tool(Seconds, PortPid);
tool("perf", Round, Seconds, PortPid) ->
    Dir = filename:absname("_build/profile"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Perf = fun(Name, Pid) ->
        File = filename:join(Dir, Name ++ ".data"),
        Cmd = io_lib:format("perf record -q -e cpu-clock -F 2000 -g -o ~s -p ~s -- sleep ~p 2>&1",
                            [File, Pid, Seconds]),
        Parent = self(),
        spawn_link(fun() -> Parent ! {perf, Name, os:cmd(lists:flatten(Cmd))} end),
        File
    end,
    Files = [Perf("beam", os:getpid()), Perf("port", integer_to_list(PortPid))],
    timer:sleep(300),
    N = repeat(Round, Seconds * 1000),
    [receive {perf, Name, Out} -> io:format("~s", [[[Name, ": ", Out] || Out =/= ""]]) end
     || Name <- ["beam", "port"]],
    io:format("~n-- perf: ~p tasks; top symbols (self time), raw data in ~s~n", [N, Dir]),
    lists:foreach(fun(File) ->
        io:format("~s:~n~s", [filename:basename(File),
              os:cmd("perf report -i " ++ File ++ " --stdio --no-children --sort dso,symbol"
                     " -g none --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40")])
    end, Files).

%% CPU of each half of a task, measured apart (CPU time, not wall time:
%% robust on a loaded machine). The port is stopped (SIGSTOP) while the
%% caller submits a batch, so the node's CPU then is the caller's submit
%% and the pipe write; then it continues, and the node's CPU until every
%% result sits in the caller's mailbox is the worker's (the driver's read,
%% intake, decode, routing), the port's CPU is the port's whole part;
%% last, the caller's awaits. The batch fits in the pipe (64 KiB).
split_tool(Seconds, PortPid) ->
    Batch = 300,
    Port = integer_to_list(PortPid),
    Until = erlang:monotonic_time(millisecond) + Seconds * 1000,
    Acc = split_rounds(Batch, Port, Until, {0, 0, 0, 0, 0}),
    {N, Submit, Worker, PortCpu, Receive} = Acc,
    io:format("~n-- split: ~p tasks in batches of ~p; CPU per task, us:~n"
              "  caller submit + pipe write (port stopped)  ~.2f~n"
              "  worker: read, intake, decode, routing      ~.2f~n"
              "  caller receive (await)                     ~.2f~n"
              "  port: read, decode, Python, encode, write  ~.2f~n",
              [N, Batch, Submit / N, Worker / N, Receive / N, PortCpu / N]),
    decode_costs().

split_rounds(Batch, Port, Until, {N, S, W, P, R} = Acc) ->
    case erlang:monotonic_time(millisecond) >= Until of
        true -> Acc;
        false ->
            Meter = get(cpu_meter),
            ok = signal(Port, "STOP"),
            [B0] = pyport_cpu:read(Meter, [self]),
            Refs = [py_event_loop:create_task(?PY, echo, [I]) || I <- lists:seq(1, Batch)],
            [B1, P2] = pyport_cpu:read(Meter, [self, list_to_integer(Port)]),
            ok = signal(Port, "CONT"),
            [B2] = pyport_cpu:read(Meter, [self]),
            ok = wait_mailbox(Batch),
            [B3, P3] = pyport_cpu:read(Meter, [self, list_to_integer(Port)]),
            lists:foreach(fun(Ref) -> {ok, _} = py_event_loop:await(Ref, infinity) end, Refs),
            [B4] = pyport_cpu:read(Meter, [self]),
            split_rounds(Batch, Port, Until,
                         {N + Batch, S + B1 - B0, W + B3 - B2, P + P3 - P2, R + B4 - B3})
    end.

%% kill(1) from a shell kept open (os:cmd would cost this node a fork
%% and a port each time); returns once the signal is sent.
signal(OsPid, Sig) ->
    Sh = case get(signal_shell) of
        undefined ->
            S = open_port({spawn, "sh"}, [{line, 256}, binary, use_stdio]),
            put(signal_shell, S),
            S;
        S -> S
    end,
    true = port_command(Sh, ["kill -", Sig, " ", OsPid, "; echo sent\n"]),
    receive {Sh, {data, {eol, <<"sent">>}}} -> ok after 10000 -> error(signal_timeout) end.

wait_mailbox(Batch) ->
    case erlang:process_info(self(), message_queue_len) of
        {message_queue_len, L} when L >= Batch -> ok;
        _ -> timer:sleep(1), wait_mailbox(Batch)
    end.

%% The worker's decode of one result frame, and the framer's split of a
%% read holding 100 of them, timed alone (CPU of this node per op).
decode_costs() ->
    Frame = term_to_binary({result, make_ref(), {ok, 12345}}),
    Read = iolist_to_binary([[<<(byte_size(Frame)):32>>, Frame] || _ <- lists:seq(1, 100)]),
    Time = fun(Count, Fun) ->
        C0 = cpu_us(os:getpid()),
        Fun(Count),
        (cpu_us(os:getpid()) - C0) / Count
    end,
    Loop = fun Loop(0, _) -> ok; Loop(K, F) -> F(), Loop(K - 1, F) end,
    Framer = pyport_framer:new(64 bsl 20),
    Dec = Time(200000, fun(K) -> Loop(K, fun() -> {ok, _, _} = pyport_term:decode(Frame, 64 bsl 20, 1000) end) end),
    Split = Time(2000, fun(K) -> Loop(K, fun() -> {ok, _, _} = pyport_framer:feed(Read, Framer) end) end) / 100,
    io:format("  of which: pyport_term:decode/3 of one result ~.2f, framer split ~.2f per frame~n",
              [Dec, Split]).

%% Read and write system calls of a process so far (/proc/<pid>/io:
%% syscr counts read, readv, pread...; syscw the writes), all threads.
syscalls(OsPid) when is_integer(OsPid) -> syscalls(integer_to_list(OsPid));
syscalls(OsPid) ->
    {ok, Io} = file:read_file("/proc/" ++ OsPid ++ "/io"),
    Field = fun(Name) ->
        {match, [V]} = re:run(Io, Name ++ ": (\\d+)", [{capture, all_but_first, binary}]),
        binary_to_integer(V)
    end,
    {Field("syscr"), Field("syscw")}.

%% The worker of loop 1 (the one process all results pass through).
whereis_worker() ->
    [Pid] = [P || P <- erlang:processes(),
                  case erlang:process_info(P, dictionary) of
                      {dictionary, D} -> proplists:get_value('$initial_call', D) =:= {pyport_worker, init, 1};
                      _ -> false
                  end],
    Pid.

%% What eprof's tracing adds to each traced call: a loop of calls to an
%% empty function, timed with and without it.
eprof_overhead() ->
    Calls = 200000,
    T0 = erlang:monotonic_time(nanosecond),
    ok = calib_loop(Calls),
    Plain = erlang:monotonic_time(nanosecond) - T0,
    profiling = eprof:start_profiling([self()], {?MODULE, '_', '_'}),
    ok = calib_loop(Calls),
    profiling_stopped = eprof:stop_profiling(),
    Traced = lists:sum([Us || {_, Funs} <- eprof:dump(), {{?MODULE, F, _}, {_, Us}} <- Funs,
                              F =:= calib_loop orelse F =:= nop]),
    %% Each round is two traced calls: calib_loop/1 and nop/1.
    max(0.0, (Traced * 1000 - Plain) / 1000 / (2 * Calls)).

calib_loop(0) -> ok;
calib_loop(N) -> _ = ?MODULE:nop(N), calib_loop(N - 1).

-spec nop(term()) -> term().
nop(X) -> X.

%% eprof's per-process table, summed per role, less eprof's overhead per
%% call; the top functions of each, and the components of docs/performance.md.
eprof_by_role(Roles, N, Overhead) ->
    Procs = eprof_procs(),
    Assigned = fun(P) ->
        case [Name || {Name, F} <- Roles, F(P)] of
            [Name | _] -> Name;
            [] -> "callers (and every other process)"
        end
    end,
    ByRole = lists:foldl(fun({P, Funs}, Acc) ->
        maps:update_with(Assigned(P), fun(L) -> Funs ++ L end, Funs, Acc)
    end, #{}, Procs),
    Total = lists:sum([T || {_, Funs} <- Procs, {_, _, T} <- Funs]),
    maps:foreach(fun(Role, Funs) ->
        Merged = [{MFA, C, max(0.0, T - C * Overhead)} || {MFA, C, T} <- merge_funs(Funs)],
        RoleTotal = lists:sum([T || {_, _, T} <- Merged]),
        io:format("  ~s: ~.2f us per task (~.1f% of traced time before the correction)~n",
                  [Role, RoleTotal / N, 100 * lists:sum([T || {_, _, T} <- merge_funs(Funs)]) / max(1, Total)]),
        Top = lists:sublist(lists:reverse(lists:keysort(3, Merged)), list_to_integer(os:getenv("PROFILE_TOP", "15"))),
        [io:format("    ~5.1f%  ~8.2f calls/task  ~s~n",
                   [100 * T / max(1, RoleTotal), Calls / N, format_mfa(MFA)])
         || {MFA, Calls, T} <- Top]
    end, ByRole).

%% [{Pid, [{MFA, Calls, Us}]}]: eprof's data, without its printout.
eprof_procs() ->
    [{Pid, [{MFA, Calls, Us} || {MFA, {Calls, Us}} <- Funs]} || {Pid, Funs} <- eprof:dump()].

merge_funs(Funs) ->
    M = lists:foldl(fun({MFA, C, T}, Acc) ->
        maps:update_with(MFA, fun({C0, T0}) -> {C0 + C, T0 + T} end, {C, T}, Acc)
    end, #{}, Funs),
    [{MFA, C, T} || {MFA, {C, T}} <- maps:to_list(M)].

format_mfa({M, F, A}) -> io_lib:format("~p:~p/~p", [M, F, A]).

%% CPU time of a process so far, in us (bench/pyport_cpu.erl).
cpu_us(OsPid) when is_list(OsPid) -> cpu_us(list_to_integer(OsPid));
cpu_us(OsPid) ->
    [Us] = pyport_cpu:read(get(cpu_meter), [OsPid]),
    Us.
