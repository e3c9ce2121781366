%% Load faults: ports killed at random under a stampede of callers, and a
%% reader too slow for the port's results (backpressure).
-module(py_stress_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(F, pyport_faults).
-define(H, pyport_ct_helpers).
-define(LOOPS, 4).

-spec all() -> [atom()].
all() ->
    [stampede_with_random_port_kills, backpressure_bounds_port_memory].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(stampede_with_random_port_kills, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?LOOPS}]),
    Config;
init_per_testcase(_, Config) ->
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    pyport_ct:stop().

%% -- stampede -------------------------------------------------------------------

-spec stampede_with_random_port_kills() -> [{doc, string()}].
stampede_with_random_port_kills() -> [{doc, "50 processes submit tasks without pause while random ports are SIGKILLed (one kill every 1.2 s across 4 loops, so no loop can exceed pyport_loop_sup's 10 restarts in 5 s even if every kill hit it): every task ends in {ok, _} or an explicit {error, _}, none hangs, and the pool serves normally afterwards."}].
-spec stampede_with_random_port_kills(ct_suite:ct_config()) -> term().
stampede_with_random_port_kills(_) ->
    Self = self(),
    Duration = 8000,
    Stop = erlang:monotonic_time(millisecond) + Duration,
    Callers = [spawn_link(fun() -> Self ! {done, self(), submit_until(Stop, #{})} end)
               || _ <- lists:seq(1, 50)],
    Killer = spawn_link(fun() -> Self ! {killed, kill_until(Stop, 0)} end),
    Tallies = [receive
                   {done, C, Tally} -> Tally
               after Duration + 60000 ->
                   ct:fail({caller_hangs, C})
               end || C <- Callers],
    Kills = receive {killed, N} -> N after 60000 -> ct:fail({killer_hangs, Killer}) end,
    Total = lists:foldl(fun(T, Acc) ->
                                maps:fold(fun(K, V, A) -> maps:update_with(K, fun(X) -> X + V end, V, A) end,
                                          Acc, T)
                        end, #{}, Tallies),
    ct:pal("~b kills; outcomes: ~p", [Kills, Total]),
    %% Nothing hung (each wait is bounded and counted as `hung`), nothing
    %% came back that is neither a result nor an explicit error.
    ?assertEqual(0, maps:get(hung, Total, 0)),
    ?assertEqual(0, maps:get(crashed, Total, 0)),
    ?assertEqual(0, maps:get(malformed, Total, 0)),
    ?assert(maps:get(ok, Total, 0) > 0),
    ?assert(Kills > 0),
    %% The pool serves normally: every loop is back and answers.
    ok = pyport_ct:wait_until(
           fun() -> length(maps:get(loops, py_event_loop_pool:get_stats())) =:= ?LOOPS end,
           30000),
    [?assertEqual({ok, I}, py_event_loop:run({pyport_loop, I}, ?H, identity, [I], #{}))
     || I <- lists:seq(1, ?LOOPS)],
    ?assertMatch(#{restarts := R} when R >= 1, py_event_loop_pool:get_stats()),
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, py_event_loop_pool:get_stats()) =:= 0 end, 30000),
    ?assert(lists:keymember(pyport, 1, application:which_applications())).

%% Submits a mix of tasks (fast, sleeping, timing out, raising) until Stop;
%% returns a tally of outcomes. A call that does not return within its own
%% timeout plus a generous margin is counted as hung.
-spec submit_until(integer(), map()) -> map().
submit_until(Stop, Tally) ->
    case erlang:monotonic_time(millisecond) >= Stop of
        true ->
            Tally;
        false ->
            Outcome = one_task(rand:uniform(10)),
            submit_until(Stop, maps:update_with(Outcome, fun(N) -> N + 1 end, 1, Tally))
    end.

-spec one_task(1..10) -> atom().
one_task(N) ->
    Call = case N of
               1 -> fun() -> py_event_loop_pool:run(?F, random_work, [200], #{timeout => 50}) end;
               2 -> fun() -> py_event_loop_pool:run(?H, raise_value_error, [<<"boom">>]) end;
               3 -> fun() ->
                            Ref = py_event_loop_pool:create_task(?F, random_work, [100]),
                            py_event_loop_pool:await(Ref, 5000)
                    end;
               _ -> fun() -> py_event_loop_pool:run(?F, random_work, [20], #{timeout => 5000}) end
           end,
    {Pid, MRef} = spawn_monitor(fun() -> exit({outcome, Call()}) end),
    receive
        {'DOWN', MRef, process, Pid, {outcome, Result}} -> classify(Result);
        {'DOWN', MRef, process, Pid, Crash} ->
            ct:pal("task kind ~b raised: ~p", [N, Crash]),
            crashed
    after 20000 ->
        ct:pal("hung: task kind ~b: ~p", [N, process_info(Pid, [current_stacktrace, status])]),
        exit(Pid, kill),
        hung
    end.

-spec classify(term()) -> atom().
classify({ok, _}) -> ok;
classify({error, timeout}) -> timeout;
classify({error, {python, _, _, _}}) -> python_error;
classify({error, {python_exit, _}}) -> python_exit;
classify({error, loop_unavailable}) -> loop_unavailable;
classify({error, {worker_down, _}}) -> worker_down;
classify({error, overloaded}) -> overloaded;
classify(Other) -> ct:pal("malformed outcome: ~p", [Other]), malformed.

%% Every 1.2 s, SIGKILL the port of a random loop (if it is up).
-spec kill_until(integer(), non_neg_integer()) -> non_neg_integer().
kill_until(Stop, Kills) ->
    timer:sleep(1200),
    case erlang:monotonic_time(millisecond) >= Stop of
        true ->
            Kills;
        false ->
            case pyport_ct:loop_stats(rand:uniform(?LOOPS)) of
                #{os_pid := OsPid} ->
                    ok = pyport_ct_os:sigkill(OsPid),
                    kill_until(Stop, Kills + 1);
                undefined ->
                    kill_until(Stop, Kills)
            end
    end.

%% -- backpressure -----------------------------------------------------------------

-spec backpressure_bounds_port_memory() -> [{doc, string()}].
backpressure_bounds_port_memory() -> [{doc, "When nobody reads the port's output (fd 4 goes to a FIFO the test leaves unread) and 1200 tasks of 256 KiB results arrive, the port stops reading new tasks once its backlog passes the high-water mark: its RSS stays bounded, Erlang's queue to it grows instead, and after reading resumes every result arrives intact."}].
-spec backpressure_bounds_port_memory(ct_suite:ct_config()) -> term().
backpressure_bounds_port_memory(Config) ->
    Fifo = filename:join(?config(priv_dir, Config), "port-out.fifo"),
    [] = os:cmd("mkfifo " ++ Fifo),
    Reader = fifo_reader(Fifo),
    %% fd 4 of the port is the FIFO; fd 3 is Erlang's as usual.
    Port = open_port({spawn_executable, "/bin/sh"},
                     [{args, ["-c", "exec \"$0\" port --path \"$1\" 4>\"$2\"",
                              pyport_config:executable(), pyport_ct:helpers_dir(), Fifo]},
                      {packet, 4}, binary, nouse_stdio, exit_status]),
    try
        {ready, #{os_pid := OsPid}} = read_packet(Reader),
        %% Warm up the module and the interpreter's allocator.
        true = port_command(Port, term_to_binary({task, 0, ?F, blob, [1], #{}, #{}})),
        {result, 0, {ok, <<"r">>}} = read_packet(Reader),
        Base = pyport_ct_os:rss_kb(OsPid),
        N = 2000,
        Size = 128 * 1024,
        %% Small tasks, so that one read of the pipe brings hundreds of
        %% them: the port must stop between them, not just between reads.
        Task = fun(I) -> term_to_binary({task, I, ?F, blob, [Size], #{}, #{}}) end,
        %% Submit without being suspended (a port that stops reading fd 3
        %% for good makes Erlang's queue to it fill up: a busy port).
        Sent = send_until_busy(Port, Task, 1, N, 0),
        %% The port stops writing (nobody reads the FIFO) well before it
        %% has produced every result: it is stalled, not finished.
        ok = await_stalled(OsPid),
        Written = written(OsPid),
        ?assert(Written < N * Size div 2),
        Samples = [begin timer:sleep(100), pyport_ct_os:rss_kb(OsPid) end
                   || _ <- lists:seq(1, 20)],
        Peak = lists:max(Samples),
        ct:pal("~b of ~b tasks sent before the port was busy for good; it wrote ~b KiB "
               "and stalled; port RSS: ~b KiB before, ~b KiB peak while unread "
               "(~b MiB of results were asked for)",
               [Sent, N, Written div 1024, Base, Peak, N * Size bsr 20]),
        %% 8 MiB high-water mark, the tasks read but not yet run, a result
        %% in the making, allocator slack: far below the 300 MiB that
        %% running everything it was sent would take.
        ?assert(Peak - Base < 64 * 1024),
        %% Reading resumes: the rest goes in (blocking sends are fine now)
        %% and every result comes out, in order, intact.
        Self = self(),
        Collector = spawn_link(
                      fun() ->
                              Self ! {collected, [read_packet(Reader) || _ <- lists:seq(1, N)]}
                      end),
        [true = port_command(Port, Task(I)) || I <- lists:seq(Sent + 1, N)],
        Results = receive {collected, Rs} -> Rs after 120000 -> ct:fail({collector, Collector}) end,
        Blob = binary:copy(<<"r">>, Size),
        ?assertEqual([{result, I, {ok, Blob}} || I <- lists:seq(1, N)], Results),
        true = port_command(Port, term_to_binary(stop)),
        receive {Port, {exit_status, 0}} -> ok after 30000 -> ct:fail(port_did_not_stop) end
    after
        catch port_close(Port),
        unlink(Reader),
        exit(Reader, kill),
        file:delete(Fifo)
    end.

%% Waits until the port's written byte count stops growing for a second.
-spec await_stalled(integer()) -> ok.
await_stalled(OsPid) ->
    Deadline = erlang:monotonic_time(millisecond) + 60000,
    await_stalled(OsPid, written(OsPid), Deadline).

-spec await_stalled(integer(), non_neg_integer(), integer()) -> ok.
await_stalled(OsPid, Before, Deadline) ->
    timer:sleep(1000),
    case written(OsPid) of
        Before -> ok;
        Now ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail(port_never_stalled);
                false -> await_stalled(OsPid, Now, Deadline)
            end
    end.

%% Bytes the process has passed to write(2) so far (/proc/PID/io wchar).
-spec written(integer()) -> non_neg_integer().
written(OsPid) ->
    {ok, Io} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/io"),
    {match, [W]} = re:run(Io, <<"wchar:\\s+(\\d+)">>, [{capture, all_but_first, binary}]),
    binary_to_integer(W).

%% Sends tasks I..N until the port stays busy (2 s without taking one
%% more: it has stopped reading, it is not merely slow); returns how many
%% went in.
-spec send_until_busy(port(), fun((pos_integer()) -> binary()), pos_integer(),
                      pos_integer(), non_neg_integer()) -> non_neg_integer().
send_until_busy(_Port, _Task, I, N, _) when I > N ->
    N;
send_until_busy(_Port, _Task, I, _N, 20) ->
    I - 1;
send_until_busy(Port, Task, I, N, Tries) ->
    case erlang:port_command(Port, Task(I), [nosuspend]) of
        true -> send_until_busy(Port, Task, I + 1, N, 0);
        false -> timer:sleep(100), send_until_busy(Port, Task, I, N, Tries + 1)
    end.

%% A process that opens the FIFO (blocking until the port opens it for
%% writing) and hands out whole {packet, 4} packets on request.
-spec fifo_reader(file:filename()) -> pid().
fifo_reader(Fifo) ->
    spawn_link(fun() ->
                       {ok, Fd} = file:open(Fifo, [read, raw, binary]),
                       fifo_serve(Fd)
               end).

-spec fifo_serve(file:io_device()) -> no_return().
fifo_serve(Fd) ->
    receive
        {packet, From} ->
            <<Len:32>> = read_exact(Fd, 4),
            From ! {packet, self(), binary_to_term(read_exact(Fd, Len))},
            fifo_serve(Fd)
    end.

-spec read_exact(file:io_device(), non_neg_integer()) -> binary().
read_exact(_Fd, 0) ->
    <<>>;
read_exact(Fd, N) ->
    case file:read(Fd, N) of
        {ok, Bin} when byte_size(Bin) =:= N -> Bin;
        {ok, Bin} -> <<Bin/binary, (read_exact(Fd, N - byte_size(Bin)))/binary>>;
        eof -> exit(fifo_eof)
    end.

-spec read_packet(pid()) -> term().
read_packet(Reader) ->
    Reader ! {packet, self()},
    receive
        {packet, Reader, Term} -> Term
    after 30000 ->
        ct:fail(no_packet_on_fifo)
    end.
