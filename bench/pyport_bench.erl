%% `make bench`: every scenario against pyport and against the floor — the
%% same Erlang side driving `priv/pyport-echo`, a port from the same crate
%% that answers tasks without Python — in one run, several times each.
%% Prints a table (median, min, max, ratio to the floor) and writes JSON
%% under bench/results/.
-module(pyport_bench).

%% API.
-export([main/0, main/1]).

-define(PY, bench_tasks).

-type figure() :: #{name := binary(), unit := binary(), higher_is_better := boolean(),
                    pyport := [number()], floor => [number()],
                    cpu => {binary(), beam | port}}.

%% API.

-spec main() -> no_return().
main() ->
    main([]).

-spec main([string()]) -> no_return().
main(Args) ->
    try run(Args) of
        ok -> halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "bench failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(1)
    end.

%% Internals.

run(Args) ->
    Runs = list_to_integer(os:getenv("BENCH_RUNS", "5")),
    %% Application start/stop reports would drown the table.
    ok = logger:set_primary_config(level, warning),
    put(cpu_meter, pyport_cpu:start()),
    Label = case Args of [L | _] -> L; [] -> "unpinned" end,
    Root = filename:absname("."),
    ok = application:load(pyport),
    ok = application:set_env(pyport, python_path, [filename:join(Root, "bench/python")]),
    io:format("~n== pyport bench (~s, ~p runs, ~p schedulers, ~p CPUs) ==~n",
              [Label, Runs, erlang:system_info(schedulers), erlang:system_info(logical_processors_available)]),
    %% BENCH_TARGET: the checkout whose port programs are measured (make
    %% bench-ab points it at the base build); bench/python stays this one's.
    Target = filename:absname(os:getenv("BENCH_TARGET", Root)),
    Echo = filename:join(Target, "priv/pyport-echo"),
    Py = filename:join(Target, "priv/pyport"),
    Floor = [{floor, Echo} || os:getenv("BENCH_FLOOR", "1") =/= "0"],
    Throughput = [throughput_figures(Runs, T, Exe) || {T, Exe} <- Floor ++ [{pyport, Py}]],
    Figures = merge(Throughput)
        ++ only(cpu_names(), fun() -> cpu_figures(Runs, Py) end)
        ++ only(idle_names(), fun() -> idle_figures(Runs, Echo, Py) end)
        %% Scenario 10: the cluster pool over peer nodes (bench/py_cluster_bench.erl).
        ++ only([<<"10. cluster">>], fun() -> py_cluster_bench:figures(Runs, Py) end),
    print(Figures),
    case os:getenv("BENCH_TERMS") of
        false -> write_json(Root, Label, Runs, Figures);
        File -> write_terms(File, Figures)
    end,
    ok.

%% BENCH_ONLY=a,b: only the scenarios whose name contains one of the
%% comma-separated strings (make bench-ab BENCH_ONLY=...).
wanted(Name) ->
    case os:getenv("BENCH_ONLY", "") of
        "" -> true;
        Only -> lists:any(fun(S) -> binary:match(Name, list_to_binary(S)) =/= nomatch end,
                          string:lexemes(Only, ","))
    end.

only(Names, Fun) ->
    case lists:any(fun wanted/1, Names) of
        true -> [F || F = #{name := N} <- Fun(), wanted(N)];
        false -> []
    end.

cpu_names() -> [<<"8. CPU-bound x2: speed-up of 2 loops over 1">>].

idle_names() -> [<<"9. start to ready">>, <<"9. idle port RSS">>,
                 <<"9. idle pool CPU over 10 s (2 loops)">>].

%% One file per run for bench/pyport_bench_ab.erl: the figures as terms.
write_terms(File, Figures) ->
    ok = file:write_file(File, [io_lib:format("~p.~n", [F]) || F <- Figures]).

%% Scenarios 1-7, 9 (handles), 11 (actors) and 12 (streams), measured on one target.
throughput_figures(Runs, Target, Exe) ->
    with_pool(Exe, 2, fun() ->
        Callback = register_callback(),
        Scenarios = [
            {<<"1. sequential create_task+await, one loop, sync fn">>, <<"tasks/s">>,
             fun() -> sequential(py_event_loop, echo, 20000) end},
            {<<"1. sequential create_task+await, one loop, coroutine">>, <<"tasks/s">>,
             fun() -> sequential(py_event_loop, aecho, 20000) end},
            {<<"2. sequential via the pool">>, <<"tasks/s">>,
             fun() -> sequential(py_event_loop_pool, echo, 20000) end},
            {<<"3. 50 processes x 100 tasks via the pool">>, <<"tasks/s">>,
             fun() -> concurrent(50, 100) end},
            {<<"4. fire-and-collect 10k create_task then 10k await">>, <<"tasks/s">>,
             fun() -> fire_and_collect(10000) end},
            {<<"5. spawn_task fire-and-forget">>, <<"tasks/s">>,
             fun() -> spawned(20000) end},
            {<<"6. echo 1 KiB binary">>, <<"echoes/s">>,
             fun() -> payload(binary:copy(<<"x">>, 1024), 5000) end},
            {<<"6. echo 1 MiB binary">>, <<"MB/s">>,
             fun() -> payload(binary:copy(<<"x">>, 1 bsl 20), 100) * 1.048576 end},
            {<<"6. echo list of 1000 integers">>, <<"echoes/s">>,
             fun() -> payload(lists:seq(1, 1000), 2000) end},
            {<<"6. echo map of 100 keys">>, <<"echoes/s">>,
             fun() -> payload(maps:from_list([{integer_to_binary(K), K} || K <- lists:seq(1, 100)]), 5000) end},
            {<<"6. echo nested term (depth 100)">>, <<"echoes/s">>,
             fun() -> payload(lists:foldl(fun(I, Acc) -> [I, #{<<"k">> => Acc}] end, [], lists:seq(1, 50)), 5000) end}
        ] ++ stream_scenarios() ++ [{<<"7. erlang.call round trips">>, <<"calls/s">>, fun() -> calls(2000) end}
              || Callback, Target =:= pyport]
          ++ [{<<"9. py_obj:call on a handle (compare 2.)">>, <<"calls/s">>,
               fun() -> handle_calls(20000) end}
              || Target =:= pyport]
          ++ [Scenario || Target =:= pyport, Scenario <- actor_scenarios()]
          %% Scenario 13: the erlang_python layer (docs/porting.md).
          ++ [{<<"13. py:call sequential (compare 2.)">>, <<"calls/s">>,
               fun() -> py_calls(20000) end}
              || Target =:= pyport]
          ++ [{<<"13. schedule_inline chain, 1000 steps">>, <<"steps/s">>,
               fun() -> chain(inline_chain, 1000, 50) end}
              || Target =:= pyport]
          ++ [{<<"13. schedule_py chain, 1000 steps">>, <<"steps/s">>,
               fun() -> chain(py_chain, 1000, 50) end}
              || Target =:= pyport]
          ++ [{<<"14. sequential via a named pool (py_pool, compare 2.)">>, <<"tasks/s">>,
               fun() -> named_sequential(20000) end}],
        %% Scenario 14's pool: started once per target, stopped with it.
        {ok, NamedPool} = py_pool:start_link(#{name => bench_pool, size => 2,
                                               python_path => [filename:absname("bench/python")]}),
        try
            OsPids = port_pids(),
            lists:append([cpu_split(Name, Unit, Target, [measure(Fun, OsPids) || _ <- lists:seq(1, Runs)])
                          || {Name, Unit, Fun} <- Scenarios, wanted(Name)])
        after
            unlink(NamedPool),
            MRef = erlang:monitor(process, NamedPool),
            exit(NamedPool, shutdown),
            receive {'DOWN', MRef, _, _, _} -> ok end
        end
    end).

%% Scenario 14 (docs/operations.md): scenario 2 through a named pool.
named_sequential(N) ->
    lists:foreach(fun(I) -> {ok, I} = py_pool:run(bench_pool, ?PY, echo, [I]) end,
                  lists:seq(1, N)),
    N.

%% Scenario 12 (docs/streams.md): one stream from one loop, read with
%% py_stream:next/2; items produced faster than one per loop iteration
%% travel in batches, so the window (not the round trip) bounds the rate.
stream_scenarios() ->
    [{<<"12. stream 200k small items, sync generator, one loop">>, <<"items/s">>,
      fun() -> streamed(count, [200000], 4096) end},
     {<<"12. stream 200k small items, async generator, one loop">>, <<"items/s">>,
      fun() -> streamed(acount, [200000], 4096) end},
     {<<"12. stream 64 KiB chunks (2000), one loop">>, <<"MB/s">>,
      fun() -> streamed(chunks, [2000, 65536], 64) * 65536 / 1000000 end}].

streamed(F, Args, Window) ->
    Ref = py_event_loop:stream({pyport_loop, 1}, ?PY, F, Args, #{window => Window}),
    drain_stream(Ref, 0).

drain_stream(Ref, N) ->
    case py_stream:next(Ref, 60000) of
        {ok, _} -> drain_stream(Ref, N + 1);
        done -> N
    end.

%% Scenario 8: the same CPU-bound work from two processes, with one loop
%% and with two; one interpreter and one GIL per port should scale.
cpu_figures(Runs, Py) ->
    Work = fun() ->
        T0 = erlang:monotonic_time(microsecond),
        Parent = self(),
        Pids = [spawn_link(fun() ->
                    {ok, _} = py_event_loop:run({pyport_loop, L}, ?PY, spin, [3000000], #{timeout => 60000}),
                    Parent ! {done, self()}
                end) || L <- loops_for_two()],
        [receive {done, P} -> ok end || P <- Pids],
        erlang:monotonic_time(microsecond) - T0
    end,
    One = with_pool(Py, 1, fun() -> [Work() || _ <- lists:seq(1, Runs)] end),
    Two = with_pool(Py, 2, fun() -> [Work() || _ <- lists:seq(1, Runs)] end),
    Speedups = [O / T || {O, T} <- lists:zip(One, Two)],
    [#{name => <<"8. CPU-bound x2: speed-up of 2 loops over 1">>, unit => <<"x">>,
       higher_is_better => true, pyport => Speedups}].

%% With one loop both spins go to loop 1; with two, one each.
loops_for_two() ->
    case maps:get(num_loops, py_event_loop_pool:get_stats()) of
        1 -> [1, 1];
        _ -> [1, 2]
    end.

%% Scenario 9: start to ready, idle RSS, idle CPU.
idle_figures(Runs, Echo, Py) ->
    Start = fun(Exe) ->
        [begin
             T0 = erlang:monotonic_time(microsecond),
             with_pool(Exe, 1, fun() -> (erlang:monotonic_time(microsecond) - T0) / 1000 end)
         end || _ <- lists:seq(1, Runs)]
    end,
    Idle = fun(Exe) ->
        with_pool(Exe, 2, fun() ->
            timer:sleep(500),
            Pids = [maps:get(os_pid, L) || L <- maps:get(loops, py_event_loop_pool:get_stats())],
            Rss = lists:sum([rss_mb(P) || P <- Pids]) / length(Pids),
            Cpu0 = lists:sum([cpu_ms(P) || P <- Pids]),
            %% (BENCH_ONLY without the idle CPU row skips its 10 s wait.)
            timer:sleep(case wanted(lists:last(idle_names())) of true -> 10000; false -> 0 end),
            Cpu1 = lists:sum([cpu_ms(P) || P <- Pids]),
            {Rss, Cpu1 - Cpu0}
        end)
    end,
    {EchoRss, EchoCpu} = Idle(Echo),
    {PyRss, PyCpu} = Idle(Py),
    [#{name => <<"9. start to ready">>, unit => <<"ms">>, higher_is_better => false,
       pyport => Start(Py), floor => Start(Echo)},
     #{name => <<"9. idle port RSS">>, unit => <<"MB">>, higher_is_better => false,
       pyport => [PyRss], floor => [EchoRss]},
     #{name => <<"9. idle pool CPU over 10 s (2 loops)">>, unit => <<"ms">>, higher_is_better => false,
       pyport => [PyCpu], floor => [EchoCpu]}].

with_pool(Exe, Size, Fun) ->
    ok = application:set_env(pyport, executable, Exe),
    ok = application:set_env(pyport, event_loop_pool_size, Size),
    {ok, _} = application:ensure_all_started(pyport),
    try Fun()
    after
        ok = application:stop(pyport)
    end.

register_callback() ->
    case code:ensure_loaded(py_callback) of
        {module, py_callback} ->
            _ = py_callback:register(<<"bench_noop">>, fun(Args) -> Args end),
            true;
        _ ->
            false
    end.

%% Runs `Fun`, returning ops/s from the count it returns, and the CPU
%% (user + system) this node and the ports spent per op, in us.
measure(Fun, OsPids) ->
    erlang:garbage_collect(),
    {Beam0, Ports0} = cpu_now(OsPids),
    T0 = erlang:monotonic_time(microsecond),
    Count = Fun(),
    Micros = max(1, erlang:monotonic_time(microsecond) - T0),
    {Beam1, Ports1} = cpu_now(OsPids),
    {Count * 1000000 / Micros, (Beam1 - Beam0) / Count, (Ports1 - Ports0) / Count}.

%% One scenario's samples as three figures: the rate, and the CPU per op
%% of the BEAM and of the ports (the CPU budget of issue 24).
cpu_split(Name, Unit, Target, Samples) ->
    PerOp = per_op(Unit),
    [#{name => Name, unit => Unit, higher_is_better => true,
       Target => [R || {R, _, _} <- Samples]},
     #{name => cpu_name(Name, beam), unit => PerOp, higher_is_better => false,
       cpu => {Name, beam}, Target => [B || {_, B, _} <- Samples]},
     #{name => cpu_name(Name, port), unit => PerOp, higher_is_better => false,
       cpu => {Name, port}, Target => [P || {_, _, P} <- Samples]}].

cpu_name(Name, beam) -> <<Name/binary, " | CPU BEAM">>;
cpu_name(Name, port) -> <<Name/binary, " | CPU port">>.

per_op(Unit) ->
    case binary:split(Unit, <<"/">>) of
        [What, <<"s">>] -> <<"us CPU per ", (singular(What))/binary>>;
        _ -> <<"us CPU per op">>
    end.

singular(<<"MB">>) -> <<"MB">>;
singular(<<"echoes">>) -> <<"echo">>;
singular(What) -> binary:part(What, 0, byte_size(What) - 1).

%% The OS pids of every running loop's port (the default pool and the
%% named pool of scenario 14).
port_pids() ->
    Loops = maps:get(loops, py_event_loop_pool:get_stats())
        ++ case py_pool:get_stats(bench_pool) of
               #{loops := L} -> L;
               _ -> []
           end,
    [P || #{os_pid := P} <- Loops, is_integer(P)].

%% CPU time so far, in us, of this node and of the ports together
%% (bench/pyport_cpu.erl). Busy-waiting schedulers would count their
%% spinning: `make bench` runs the node with +sbwt none +sbwtdcpu none
%% +sbwtdio none.
cpu_now(OsPids) ->
    [Beam | Ports] = pyport_cpu:read(get(cpu_meter), [self | OsPids]),
    {Beam, lists:sum(Ports)}.

sequential(Mod, F, N) ->
    lists:foreach(fun(I) -> {ok, I} = Mod:await(Mod:create_task(?PY, F, [I]), infinity) end,
                  lists:seq(1, N)),
    N.

concurrent(Procs, Each) ->
    Parent = self(),
    Pids = [spawn_link(fun() ->
                lists:foreach(fun(I) -> {ok, I} = py_event_loop_pool:run(?PY, echo, [I]) end,
                              lists:seq(1, Each)),
                Parent ! {done, self()}
            end) || _ <- lists:seq(1, Procs)],
    [receive {done, P} -> ok end || P <- Pids],
    Procs * Each.

%% Method calls on an object kept in Python (docs/handles.md): the same
%% round trip as scenario 2, plus finding and resolving the handle.
handle_calls(N) ->
    {ok, Obj} = py_event_loop_pool:run(builtins, list, [[]], #{result => handle}),
    lists:foreach(fun(_) -> {ok, 0} = py_obj:call(Obj, '__len__', []) end,
                  lists:seq(1, N)),
    ok = py_obj:release(Obj),
    N.

py_calls(N) ->
    lists:foreach(fun(I) -> {ok, I} = py:call(?PY, echo, [I]) end, lists:seq(1, N)),
    N.

%% Times chains of Steps continuations (bench/python/bench_compat.py).
chain(F, Steps, Times) ->
    lists:foreach(fun(_) -> {ok, 0} = py:call(bench_compat, F, [Steps]) end,
                  lists:seq(1, Times)),
    Steps * Times.

fire_and_collect(N) ->
    Refs = [py_event_loop:create_task(?PY, echo, [I]) || I <- lists:seq(1, N)],
    lists:foreach(fun(R) -> {ok, _} = py_event_loop:await(R, infinity) end, Refs),
    N.

%% Tasks on one loop run in submission order, so a final `run` returns
%% only after every spawned task before it has run.
spawned(N) ->
    lists:foreach(fun(I) -> ok = py_event_loop:spawn_task(?PY, echo, [I]) end, lists:seq(1, N)),
    {ok, done} = fix_atom(py_event_loop:run(?PY, echo, [done], #{timeout => 60000})),
    N.

fix_atom({ok, <<"done">>}) -> {ok, done};
fix_atom(Other) -> Other.

payload(Term, N) ->
    lists:foreach(fun(_) -> {ok, _} = py_event_loop:run(?PY, echo, [Term], #{timeout => 60000}) end,
                  lists:seq(1, N)),
    N.

calls(N) ->
    {ok, N} = py_event_loop:run(?PY, call_loop, [N], #{timeout => 60000}),
    N.

%% Scenario 11 (docs/actors.md): gen_server:call to a Python actor against
%% py_event_loop:run of the same function, both on loop 1; cast throughput
%% (a final call returns once every cast before it is handled).
actor_scenarios() ->
    case code:ensure_loaded(py_actor) of
        {module, py_actor} ->
            [{<<"11. gen_server:call to a Python actor">>, <<"calls/s">>,
              fun() -> with_actor(fun(Pid) -> actor_calls(Pid, 20000) end) end},
             {<<"11. py_event_loop:run of the same function">>, <<"tasks/s">>,
              fun() -> runs(20000) end},
             {<<"11. gen_server:cast to a Python actor">>, <<"casts/s">>,
              fun() -> with_actor(fun(Pid) -> actor_casts(Pid, 100000) end) end}];
        _ ->
            []
    end.

with_actor(Fun) ->
    {ok, Pid} = py_actor:start(bench_actor, 'Bumper', [], #{loop => 1}),
    try Fun(Pid)
    after
        proc_lib:stop(Pid)
    end.

actor_calls(Pid, N) ->
    lists:foreach(fun(I) -> I1 = I + 1, I1 = gen_server:call(Pid, {bump, I}, 60000) end,
                  lists:seq(1, N)),
    N.

runs(N) ->
    lists:foreach(fun(I) ->
                          I1 = I + 1,
                          {ok, I1} = py_event_loop:run({pyport_loop, 1}, bench_actor, bump, [I], #{})
                  end, lists:seq(1, N)),
    N.

actor_casts(Pid, N) ->
    lists:foreach(fun(I) -> gen_server:cast(Pid, I) end, lists:seq(1, N)),
    N = gen_server:call(Pid, count, 60000),
    N.

rss_mb(OsPid) ->
    {ok, Status} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    {match, [Kb]} = re:run(Status, "VmRSS:\\s+(\\d+)", [{capture, all_but_first, binary}]),
    binary_to_integer(Kb) / 1024.

cpu_ms(OsPid) ->
    {ok, Stat} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat"),
    [_, After] = binary:split(Stat, <<") ">>),
    Fields = binary:split(After, <<" ">>, [global]),
    Ticks = binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)),
    Ticks * 1000 / 100.

%% One figure per scenario with both targets' samples.
merge([Py]) ->
    Py;
merge([Floor, Py]) ->
    [maps:merge(P, maps:with([floor], F)) || {F, P} <- lists:zip(pad(Floor, Py), Py)].

pad(Floor, Py) ->
    [case [F || F = #{name := N} <- Floor, N =:= Name] of
         [F] -> F;
         [] -> #{}
     end || #{name := Name} <- Py].

median(Xs) ->
    S = lists:sort(Xs),
    L = length(S),
    case L rem 2 of
        1 -> lists:nth(L div 2 + 1, S);
        0 -> (lists:nth(L div 2, S) + lists:nth(L div 2 + 1, S)) / 2
    end.

-spec print([figure()]) -> ok.
print(Figures) ->
    io:format("~-55s ~12s ~12s ~12s ~12s ~8s~n",
              ["scenario", "median", "min", "max", "floor", "ratio"]),
    lists:foreach(fun(#{cpu := _}) -> ok;
                     (#{name := Name, unit := Unit, pyport := Py} = F) ->
        Med = median(Py),
        {FloorS, Ratio} = case F of
            #{floor := Fl} ->
                FM = median(Fl),
                {fmt(FM), case FM == 0 of true -> "-"; false -> io_lib:format("~.2f", [Med / FM]) end};
            _ -> {"-", "-"}
        end,
        io:format("~-55s ~12s ~12s ~12s ~12s ~8s  ~s~n",
                  [Name, fmt(Med), fmt(lists:min(Py)), fmt(lists:max(Py)), FloorS, Ratio, Unit])
    end, Figures),
    print_cpu(Figures).

%% The CPU budget: per scenario, the medians of the CPU per op spent by
%% this node and by the ports (for the floor: the echo ports).
print_cpu(Figures) ->
    Cpu = maps:from_list([{K, F} || #{cpu := K} = F <- Figures]),
    Rows = [{Name, Unit, maps:get({Name, beam}, Cpu), maps:get({Name, port}, Cpu)}
            || #{name := Name, unit := Unit} = F <- Figures, not is_map_key(cpu, F),
               is_map_key({Name, beam}, Cpu)],
    case Rows of
        [] -> ok;
        _ ->
            io:format("~nCPU per op, us (user+system from /proc, medians; floor = the echo port):~n"
                      "~-55s ~8s ~8s ~8s ~12s ~12s  ~s~n",
                      ["scenario", "BEAM", "port", "total", "floor BEAM", "floor port", "per"]),
            lists:foreach(fun({Name, Unit, B, P}) ->
                io:format("~-55s ~8s ~8s ~8s ~12s ~12s  ~s~n",
                          [Name, fmt(median(maps:get(pyport, B))), fmt(median(maps:get(pyport, P))),
                           fmt(median([X + Y || {X, Y} <- lists:zip(maps:get(pyport, B), maps:get(pyport, P))])),
                           floor_cell(B), floor_cell(P), singular_unit(Unit)])
            end, Rows)
    end.

floor_cell(#{floor := Xs}) -> fmt(median(Xs));
floor_cell(_) -> "-".

singular_unit(Unit) ->
    case binary:split(Unit, <<"/">>) of
        [What, <<"s">>] -> singular(What);
        _ -> Unit
    end.

fmt(X) when X >= 100 -> integer_to_list(round(X));
fmt(X) -> io_lib:format("~.2f", [float(X)]).

write_json(Root, Label, Runs, Figures) ->
    Dir = filename:join(Root, "bench/results"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Stamp = calendar:system_time_to_rfc3339(erlang:system_time(second), [{offset, "Z"}]),
    File = filename:join(Dir, "bench-" ++ Label ++ "-" ++ [C || C <- Stamp, C =/= $:] ++ ".json"),
    Doc = #{<<"label">> => list_to_binary(Label), <<"runs">> => Runs,
            <<"time">> => list_to_binary(Stamp),
            <<"figures">> => [maps:merge(maps:remove(cpu, F), #{median => median(P)})
                              || F = #{pyport := P} <- Figures]},
    ok = file:write_file(File, json(Doc)),
    io:format("results written to ~s~n", [File]).

%% OTP 25 has no JSON module; the documents here are small and simple.
json(M) when is_map(M) ->
    ["{", lists:join(",", [[json(to_bin(K)), ":", json(V)] || {K, V} <- maps:to_list(M)]), "}"];
json(L) when is_list(L) -> ["[", lists:join(",", [json(X) || X <- L]), "]"];
json(B) when is_binary(B) -> [$", B, $"];
json(true) -> "true";
json(false) -> "false";
json(N) when is_integer(N) -> integer_to_list(N);
json(F) when is_float(F) -> float_to_list(F, [{decimals, 3}]).

to_bin(A) when is_atom(A) -> atom_to_binary(A);
to_bin(B) -> B.
