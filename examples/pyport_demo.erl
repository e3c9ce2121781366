%% `make demo`: starts pyport, runs real async Python tasks concurrently
%% through the pool, prints their results and the pool's stats, stops.
-module(pyport_demo).
-export([main/0]).

-spec main() -> no_return().
main() ->
    try run() of
        ok -> halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "demo failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(1)
    end.

run() ->
    ok = application:load(pyport),
    ok = application:set_env(pyport, python_path, [filename:absname("examples/python")]),
    {ok, _} = application:ensure_all_started(pyport),
    io:format("pyport started: ~p loops~n", [maps:get(num_loops, py_event_loop_pool:get_stats())]),

    {ok, Root} = py_event_loop_pool:run(math, sqrt, [16.0]),
    io:format("math.sqrt(16.0)                 -> ~p~n", [Root]),

    %% Five callers, each its own Erlang process, so the pool spreads them
    %% over its loops; each nap sleeps 0.5 s, together they take ~0.5 s.
    Parent = self(),
    T0 = erlang:monotonic_time(millisecond),
    Callers = [spawn_link(fun() ->
                   Parent ! {self(), N, py_event_loop_pool:run(demo_tasks, nap,
                                                              [<<"nap", (integer_to_binary(N))/binary>>, 0.5])}
               end) || N <- lists:seq(1, 5)],
    Naps = [receive {Pid, N, R} -> {N, R} end || Pid <- Callers],
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    [io:format("demo_tasks.nap(nap~p, 0.5)      -> ~p~n", [N, R]) || {N, R} <- Naps],
    io:format("five 0.5 s naps took ~p ms in all~n", [Elapsed]),

    %% One task that gathers ten coroutines inside Python.
    Gathered = py_event_loop_pool:create_task(demo_tasks, gather_naps, [10, 0.2]),
    Digest = py_event_loop_pool:create_task(demo_tasks, digest, [<<"pyport">>, 100000]),
    {ok, Inner} = py_event_loop_pool:await(Gathered, 5000),
    {ok, Hex} = py_event_loop_pool:await(Digest, 10000),
    io:format("demo_tasks.gather_naps(10, 0.2) -> ~p results~n", [length(Inner)]),
    io:format("demo_tasks.digest(pyport, 1e5)  -> ~s~n", [Hex]),

    {error, {python, Type, Msg, _Traceback}} = py_event_loop_pool:run(math, sqrt, [-1.0]),
    io:format("math.sqrt(-1.0)                 -> {error, {python, ~s, ~s, ...}}~n", [Type, Msg]),

    io:format("pool stats: ~p~n", [py_event_loop_pool:get_stats()]),
    ok = application:stop(pyport),
    io:format("stopped cleanly~n"),
    ok.
