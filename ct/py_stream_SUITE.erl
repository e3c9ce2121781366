%% Streams (docs/streams.md): generators and async generators flowing to
%% Erlang with credit, cancellation that runs Python's clean-up, and
%% failures on either side. Fixtures: ct/python/pyport_stream.py. Each
%% case gets a freshly started application.
-module(py_stream_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(S, pyport_stream).
-define(L1, {pyport_loop, 1}).
-define(NUM_LOOPS, 2).
%% Liveness bound only.
-define(PROMPTLY, 5000).

-spec all() -> [atom()].
all() ->
    [many_small_items, many_small_items_async, large_items, token_stream,
     blocking_sync_generator, lazy_iterable_and_awaitable, active_window_bounds_delivery,
     slow_consumer_stalls_producer, cancel_runs_finally, cancel_runs_async_with_exit,
     timeout_closes_generator, idle_timeout_async, idle_timeout_busy_sync,
     consumer_death_closes_generator, generator_error_after_items,
     async_generator_error_after_items, unconvertible_item_ends_stream,
     not_a_stream_is_an_error, port_killed_mid_stream, port_killed_mid_active_stream,
     two_streams_interleaved, pool_stream_beside_tasks, foreach_and_raising_fun,
     bad_options_are_badarg, unknown_and_ended_streams, unconvertible_argument,
     batching_within_credit, forged_results_end_the_stream,
     named_pool_active_stream, active_stream_alias_removed_at_end,
     %% issue 23: no silent loss, deadlines between items
     unsendable_async_item_ends_stream, handle_item_ends_sync_stream,
     busy_sync_generator_hits_timeout, busy_async_generator_is_interrupted].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    pyport_ct:stop().

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_Case, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS}]),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    pyport_ct:stop().

%% Cases.

-spec many_small_items() -> [{doc, string()}].
many_small_items() -> [{doc, "100,000 small items of a sync generator arrive complete and in order."}].
-spec many_small_items(ct_suite:ct_config()) -> term().
many_small_items(_) ->
    N = 100000,
    Ref = py_event_loop_pool:stream(?S, count, [N], #{window => 1024}),
    ?assertEqual({ok, lists:seq(0, N - 1)}, py_stream:to_list(Ref)),
    no_stream_left().

-spec many_small_items_async() -> [{doc, string()}].
many_small_items_async() -> [{doc, "100,000 small items of an async generator arrive complete and in order, with the default window."}].
-spec many_small_items_async(ct_suite:ct_config()) -> term().
many_small_items_async(_) ->
    N = 100000,
    Ref = py_event_loop_pool:stream(?S, acount, [N]),
    ?assertEqual({ok, lists:seq(0, N - 1)}, py_stream:to_list(Ref)),
    no_stream_left().

-spec large_items() -> [{doc, string()}].
large_items() -> [{doc, "1 MiB items arrive intact."}].
-spec large_items(ct_suite:ct_config()) -> term().
large_items(_) ->
    Size = 1 bsl 20,
    Ref = py_event_loop_pool:stream(?S, chunks, [20, Size], #{window => 4}),
    {ok, Chunks} = py_stream:to_list(Ref),
    ?assertEqual(20, length(Chunks)),
    lists:foreach(fun({I, C}) -> ?assertEqual(binary:copy(<<I>>, Size), C) end,
                  lists:zip(lists:seq(0, 19), Chunks)),
    no_stream_left().

-spec token_stream() -> [{doc, string()}].
token_stream() -> [{doc, "An async generator with asyncio.sleep between items (an LLM-like token stream) delivers each token as it is produced."}].
-spec token_stream(ct_suite:ct_config()) -> term().
token_stream(_) ->
    Words = [<<"The">>, <<" quick">>, <<" brown">>, <<" fox">>, <<".">>],
    T0 = erlang:monotonic_time(millisecond),
    Ref = py_event_loop_pool:stream(?S, tokens, [Words, 0.1]),
    Timed = [{W, erlang:monotonic_time(millisecond) - T0}
             || _ <- Words, {ok, W} <- [py_stream:next(Ref)]],
    ?assertEqual(done, py_stream:next(Ref)),
    ?assertEqual(Words, [W || {W, _} <- Timed]),
    %% The first word came long before the last was produced.
    [{_, First} | _] = Timed,
    {_, Last} = lists:last(Timed),
    ?assert(Last - First >= 300),
    no_stream_left().

-spec blocking_sync_generator() -> [{doc, string()}].
blocking_sync_generator() -> [{doc, "A sync generator that blocks between items streams each item, and a task on the same loop runs between them."}].
-spec blocking_sync_generator(ct_suite:ct_config()) -> term().
blocking_sync_generator(_) ->
    Ref = py_event_loop:stream(?L1, ?S, blocking, [10, 0.1], #{}),
    ?assertEqual({ok, 0}, py_stream:next(Ref)),
    %% Answered while the generator still has most items to block for.
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({ok, 7}, py_event_loop:run(?L1, ?S, asleep_then, [0, 7], #{})),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 700),
    ?assertEqual({ok, lists:seq(1, 9)}, py_stream:to_list(Ref)),
    no_stream_left().

-spec lazy_iterable_and_awaitable() -> [{doc, string()}].
lazy_iterable_and_awaitable() -> [{doc, "An iterable that is no generator, and a coroutine whose result is a generator, both stream."}].
-spec lazy_iterable_and_awaitable(ct_suite:ct_config()) -> term().
lazy_iterable_and_awaitable(_) ->
    ?assertEqual({ok, [3, 2, 1]},
                 py_stream:to_list(py_event_loop_pool:stream(?S, countdown, [3]))),
    ?assertEqual({ok, [0, 1, 2, 3]},
                 py_stream:to_list(py_event_loop_pool:stream(?S, coroutine_returning_stream, [4]))),
    ?assertEqual({ok, [0, 1]},
                 py_stream:to_list(py_event_loop_pool:stream(builtins, range, [2]))),
    no_stream_left().

-spec active_window_bounds_delivery() -> [{doc, string()}].
active_window_bounds_delivery() -> [{doc, "Active mode sends at most window unacknowledged items; ack/2 grants more; the end is a message."}].
-spec active_window_bounds_delivery(ct_suite:ct_config()) -> term().
active_window_bounds_delivery(_) ->
    Ref = py_event_loop:stream(?L1, ?S, aendless, [<<"active">>], #{mode => active, window => 4}),
    ?assertEqual([0, 1, 2, 3], data(Ref, 4)),
    ?assertEqual([], data(Ref, 1, 300)),
    ?assertEqual({ok, 4}, py_event_loop:run(?L1, ?S, how_far, [<<"active">>], #{})),
    ok = py_stream:ack(Ref, 3),
    ?assertEqual([4, 5, 6], data(Ref, 3)),
    ?assertEqual([], data(Ref, 1, 300)),
    ok = py_stream:cancel(Ref),
    Ref2 = py_event_loop_pool:stream(?S, count, [3], #{mode => active, window => 2}),
    ?assertEqual([0, 1], data(Ref2, 2)),
    ok = py_stream:ack(Ref2, 2),
    ?assertEqual([2], data(Ref2, 1)),
    receive {py_stream, Ref2, done} -> ok after ?PROMPTLY -> ct:fail(no_done) end,
    %% Credit for an ended stream changes nothing.
    ok = py_stream:ack(Ref2, 5),
    no_stream_left().

-spec slow_consumer_stalls_producer() -> [{doc, string()}].
slow_consumer_stalls_producer() -> [{doc, "An endless generator read at one item per second advances only as far as the window: the items buffered and the port's RSS stay flat."}].
-spec slow_consumer_stalls_producer(ct_suite:ct_config()) -> term().
slow_consumer_stalls_producer(_) ->
    Window = 16,
    Ref = py_event_loop:stream(?L1, ?S, endless, [<<"slow">>], #{window => Window}),
    {ok, 0} = py_stream:next(Ref),
    timer:sleep(200),
    {ok, Rss0} = py_event_loop:run(?L1, ?S, rss_kb, [], #{}),
    Ahead = [begin
                 {ok, I} = py_stream:next(Ref),
                 timer:sleep(1000),
                 {ok, Far} = py_event_loop:run(?L1, ?S, how_far, [<<"slow">>], #{}),
                 Far - (I + 1)
             end || _ <- lists:seq(1, 6)],
    {ok, Rss1} = py_event_loop:run(?L1, ?S, rss_kb, [], #{}),
    ct:pal("produced ahead of the consumer: ~p; RSS ~b -> ~b KiB", [Ahead, Rss0, Rss1]),
    ?assert(lists:max(Ahead) =< Window),
    ?assert(Rss1 - Rss0 < 4096),
    %% The consumer's mailbox never holds more than the window.
    {message_queue_len, Queued} = process_info(self(), message_queue_len),
    ?assert(Queued =< 1),
    ok = py_stream:cancel(Ref),
    no_stream_left().

-spec cancel_runs_finally() -> [{doc, string()}].
cancel_runs_finally() -> [{doc, "cancel/1 closes the generator: its finally block runs (it sends a message to Erlang), and no later message of the stream arrives."}].
-spec cancel_runs_finally(ct_suite:ct_config()) -> term().
cancel_runs_finally(_) ->
    Ref = py_event_loop_pool:stream(?S, tell_on_close, [self(), <<"c">>]),
    {ok, 0} = py_stream:next(Ref),
    ok = py_stream:cancel(Ref),
    receive {closed, <<"c">>} -> ok after ?PROMPTLY -> ct:fail(finally_not_run) end,
    ?assertEqual({error, unknown_stream}, py_stream:next(Ref)),
    no_stream_left().

-spec cancel_runs_async_with_exit() -> [{doc, string()}].
cancel_runs_async_with_exit() -> [{doc, "Cancelling an async generator runs its async with exit, while it waits for credit and while it sleeps."}].
-spec cancel_runs_async_with_exit(ct_suite:ct_config()) -> term().
cancel_runs_async_with_exit(_) ->
    Ref = py_event_loop_pool:stream(?S, atell_on_close, [self(), <<"credit">>],
                                    #{window => 1}),
    {ok, 0} = py_stream:next(Ref),
    ok = py_stream:cancel(Ref),
    receive {exited, <<"credit">>} -> ok after ?PROMPTLY -> ct:fail(exit_not_run) end,
    Ref2 = py_event_loop_pool:stream(?S, atell_on_close, [self(), <<"sleep">>, 5.0]),
    timer:sleep(100),
    ok = py_stream:cancel(Ref2),
    receive {exited, <<"sleep">>} -> ok after ?PROMPTLY -> ct:fail(exit_not_run) end,
    no_stream_left().

-spec timeout_closes_generator() -> [{doc, string()}].
timeout_closes_generator() -> [{doc, "The stream's timeout closes the generator (its finally runs) and ends the stream with {error, timeout} after the items taken."}].
-spec timeout_closes_generator(ct_suite:ct_config()) -> term().
timeout_closes_generator(_) ->
    Ref = py_event_loop_pool:stream(?S, tell_on_close, [self(), <<"t">>],
                                    #{timeout => 300, window => 2}),
    {ok, 0} = py_stream:next(Ref),
    timer:sleep(500),
    receive {closed, <<"t">>} -> ok after ?PROMPTLY -> ct:fail(finally_not_run) end,
    ?assertEqual({error, timeout}, drain(Ref)),
    no_stream_left().

-spec idle_timeout_async() -> [{doc, string()}].
idle_timeout_async() -> [{doc, "idle_timeout ends a stream whose async generator goes silent, after the items it produced; waiting for credit is not idle."}].
-spec idle_timeout_async(ct_suite:ct_config()) -> term().
idle_timeout_async(_) ->
    Ref = py_event_loop_pool:stream(?S, stalls_after, [2, 30], #{idle_timeout => 200}),
    ?assertEqual({ok, 0}, py_stream:next(Ref)),
    ?assertEqual({ok, 1}, py_stream:next(Ref)),
    ?assertEqual({error, idle_timeout}, py_stream:next(Ref)),
    %% A consumer slower than idle_timeout does not trip it.
    Ref2 = py_event_loop_pool:stream(?S, count, [6], #{idle_timeout => 100, window => 2}),
    ?assertEqual([{ok, I} || I <- lists:seq(0, 5)],
                 [begin timer:sleep(150), py_stream:next(Ref2) end || _ <- lists:seq(0, 5)]),
    ?assertEqual(done, py_stream:next(Ref2)),
    no_stream_left().

-spec idle_timeout_busy_sync() -> [{doc, string()}].
idle_timeout_busy_sync() -> [{doc, "idle_timeout interrupts a sync generator spinning on the loop thread (the watchdog), and the loop serves on."}].
-spec idle_timeout_busy_sync(ct_suite:ct_config()) -> term().
idle_timeout_busy_sync(_) ->
    Ref = py_event_loop:stream(?L1, ?S, spins_after, [1, 30], #{idle_timeout => 300}),
    ?assertEqual({ok, 0}, py_stream:next(Ref)),
    ?assertEqual({error, idle_timeout}, py_stream:next(Ref, 10000)),
    ?assertEqual({ok, 4.0}, py_event_loop:run(?L1, math, sqrt, [16.0], #{})),
    no_stream_left().

-spec consumer_death_closes_generator() -> [{doc, string()}].
consumer_death_closes_generator() -> [{doc, "A consumer that dies mid-stream has the generator closed: its finally runs and the loop keeps no entry for it."}].
-spec consumer_death_closes_generator(ct_suite:ct_config()) -> term().
consumer_death_closes_generator(_) ->
    Self = self(),
    Consumer = spawn(fun() ->
                             Ref = py_event_loop:stream(?L1, ?S, tell_on_close, [Self, <<"d">>], #{}),
                             {ok, 0} = py_stream:next(Ref),
                             Self ! {reading, self()},
                             receive never -> ok end
                     end),
    receive {reading, Consumer} -> ok after ?PROMPTLY -> ct:fail(no_consumer) end,
    exit(Consumer, kill),
    receive {closed, <<"d">>} -> ok after ?PROMPTLY -> ct:fail(finally_not_run) end,
    ok = pyport_ct:wait_until(fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =:= 0 end,
                              ?PROMPTLY),
    no_stream_left().

-spec generator_error_after_items() -> [{doc, string()}].
generator_error_after_items() -> [{doc, "An exception in a sync generator ends the stream with {error, {python, Type, Msg, Tb}} after the items it produced."}].
-spec generator_error_after_items(ct_suite:ct_config()) -> term().
generator_error_after_items(_) ->
    Ref = py_event_loop_pool:stream(?S, fail_after, [3]),
    ?assertEqual([{ok, 0}, {ok, 1}, {ok, 2}], [py_stream:next(Ref) || _ <- [1, 2, 3]]),
    {error, {python, <<"ValueError">>, <<"failed after 3">>, Tb}} = py_stream:next(Ref),
    ?assertNotEqual(nomatch, binary:match(Tb, <<"fail_after">>)),
    no_stream_left().

-spec async_generator_error_after_items() -> [{doc, string()}].
async_generator_error_after_items() -> [{doc, "An exception in an async generator ends the stream after the items it produced, in active mode too."}].
-spec async_generator_error_after_items(ct_suite:ct_config()) -> term().
async_generator_error_after_items(_) ->
    Ref = py_event_loop_pool:stream(?S, afail_after, [5], #{mode => active, window => 100}),
    ?assertEqual(lists:seq(0, 4), data(Ref, 5)),
    receive
        {py_stream, Ref, {error, {python, <<"KeyError">>, <<"'gone'">>, _}}} -> ok
    after ?PROMPTLY -> ct:fail(no_error)
    end,
    no_stream_left().

-spec unconvertible_item_ends_stream() -> [{doc, string()}].
unconvertible_item_ends_stream() -> [{doc, "An item with no Erlang form ends its stream with a TypeError after the items before it; the port is unharmed."}].
-spec unconvertible_item_ends_stream(ct_suite:ct_config()) -> term().
unconvertible_item_ends_stream(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Ref = py_event_loop:stream(?L1, ?S, unconvertible_at, [3], #{}),
    ?assertEqual([{ok, 0}, {ok, 1}, {ok, 2}], [py_stream:next(Ref) || _ <- [1, 2, 3]]),
    ?assertMatch({error, {python, <<"TypeError">>, _, _}}, py_stream:next(Ref)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)),
    no_stream_left().

-spec not_a_stream_is_an_error() -> [{doc, string()}].
not_a_stream_is_an_error() -> [{doc, "A function that returns a plain container, raises, or does not exist gives the stream's error at once."}].
-spec not_a_stream_is_an_error(ct_suite:ct_config()) -> term().
not_a_stream_is_an_error(_) ->
    ?assertMatch({error, {python, <<"TypeError">>, <<"a stream needs", _/binary>>, <<>>}},
                 py_stream:next(py_event_loop_pool:stream(?S, not_a_stream, []))),
    ?assertMatch({error, {python, <<"RuntimeError">>, <<"no stream today">>, _}},
                 py_stream:next(py_event_loop_pool:stream(?S, raises_at_call, []))),
    ?assertMatch({error, {python, <<"AttributeError">>, _, _}},
                 py_stream:next(py_event_loop_pool:stream(?S, no_such_function, []))),
    no_stream_left().

-spec port_killed_mid_stream() -> [{doc, string()}].
port_killed_mid_stream() -> [{doc, "A port killed mid-stream ends a pull stream with {error, {python_exit, _}} at once; a fresh port streams again."}].
-spec port_killed_mid_stream(ct_suite:ct_config()) -> term().
port_killed_mid_stream(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Ref = py_event_loop:stream(?L1, ?S, endless, [<<"k">>], #{}),
    {ok, 0} = py_stream:next(Ref),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    %% 137 (SIGKILL), or epipe when the consumer's credit reached the
    %% dead port before its exit status did.
    ?assertMatch({error, {python_exit, _}}, drain(Ref)),
    _ = pyport_ct:await_restart(1, OsPid),
    ?assertEqual({ok, [0, 1]}, py_stream:to_list(py_event_loop:stream(?L1, ?S, count, [2], #{}))),
    no_stream_left().

-spec port_killed_mid_active_stream() -> [{doc, string()}].
port_killed_mid_active_stream() -> [{doc, "A port killed mid-stream ends an active stream with a {py_stream, Ref, {error, {python_exit, _}}} message at once."}].
-spec port_killed_mid_active_stream(ct_suite:ct_config()) -> term().
port_killed_mid_active_stream(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Ref = py_event_loop:stream(?L1, ?S, endless, [<<"ka">>], #{mode => active, window => 2}),
    ?assertEqual([0, 1], data(Ref, 2)),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    receive
        {py_stream, Ref, {error, {python_exit, _}}} -> ok
    after ?PROMPTLY -> ct:fail(no_exit)
    end,
    _ = pyport_ct:await_restart(1, OsPid),
    no_stream_left().

-spec two_streams_interleaved() -> [{doc, string()}].
two_streams_interleaved() -> [{doc, "Two streams on one loop, read alternately, each get their own items in order."}].
-spec two_streams_interleaved(ct_suite:ct_config()) -> term().
two_streams_interleaved(_) ->
    A = py_event_loop:stream(?L1, ?S, count, [500], #{window => 3}),
    B = py_event_loop:stream(?L1, ?S, tokens, [[<<"x">>, <<"y">>, <<"z">>], 0.01], #{window => 1}),
    C = py_event_loop:stream(?L1, ?S, acount, [500], #{window => 7}),
    Read = [{py_stream:next(A), py_stream:next(C)} || _ <- lists:seq(1, 500)],
    ?assertEqual([{{ok, I}, {ok, I}} || I <- lists:seq(0, 499)], Read),
    ?assertEqual({ok, [<<"x">>, <<"y">>, <<"z">>]}, py_stream:to_list(B)),
    ?assertEqual(done, py_stream:next(A)),
    ?assertEqual(done, py_stream:next(C)),
    no_stream_left().

-spec pool_stream_beside_tasks() -> [{doc, string()}].
pool_stream_beside_tasks() -> [{doc, "A stream through the pool runs while other callers run ordinary tasks on the same loops."}].
-spec pool_stream_beside_tasks(ct_suite:ct_config()) -> term().
pool_stream_beside_tasks(_) ->
    Self = self(),
    Callers = [spawn_link(fun() ->
                                  Results = [py_event_loop_pool:run(?S, asleep_then, [0.001, I])
                                             || I <- lists:seq(1, 50)],
                                  Self ! {self(), Results}
                          end) || _ <- lists:seq(1, 8)],
    Ref = py_event_loop_pool:stream(?S, tokens, [lists:seq(1, 50), 0.002]),
    ?assertEqual({ok, lists:seq(1, 50)}, py_stream:to_list(Ref)),
    [receive
         {C, Results} -> ?assertEqual([{ok, I} || I <- lists:seq(1, 50)], Results)
     after 30000 -> ct:fail({no_answer, C})
     end || C <- Callers],
    no_stream_left().

-spec foreach_and_raising_fun() -> [{doc, string()}].
foreach_and_raising_fun() -> [{doc, "foreach/2 calls the fun on each item; a fun that raises cancels the stream (the generator is closed) and the exception propagates."}].
-spec foreach_and_raising_fun(ct_suite:ct_config()) -> term().
foreach_and_raising_fun(_) ->
    ok = py_stream:foreach(py_event_loop_pool:stream(?S, count, [5]),
                           fun(I) -> self() ! {item, I} end),
    ?assertEqual([{item, I} || I <- lists:seq(0, 4)], pyport_ct:mailbox()),
    Ref = py_event_loop_pool:stream(?S, tell_on_close, [self(), <<"f">>]),
    ?assertError(stop_here, py_stream:foreach(Ref, fun(2) -> error(stop_here); (_) -> ok end)),
    receive {closed, <<"f">>} -> ok after ?PROMPTLY -> ct:fail(finally_not_run) end,
    no_stream_left().

-spec bad_options_are_badarg() -> [{doc, string()}].
bad_options_are_badarg() -> [{doc, "Bad options and arguments are refused at the call site with badarg."}].
-spec bad_options_are_badarg(ct_suite:ct_config()) -> term().
bad_options_are_badarg(_) ->
    ?assertError({badarg, {option, window, 0}}, py_event_loop_pool:stream(?S, count, [1], #{window => 0})),
    ?assertError({badarg, {option, mode, push}}, py_event_loop_pool:stream(?S, count, [1], #{mode => push})),
    ?assertError({badarg, {option, windw, 3}}, py_event_loop_pool:stream(?S, count, [1], #{windw => 3})),
    ?assertError({badarg, {timeout, -1}}, py_event_loop_pool:stream(?S, count, [1], #{timeout => -1})),
    ?assertError({badarg, {args, x}}, py_event_loop_pool:stream(?S, count, x)),
    ?assertError({badarg, {loop, nope}}, py_event_loop:stream(nope, ?S, count, [1], #{})),
    ?assertError({badarg, _}, py_stream:ack(make_ref(), 0)),
    no_stream_left().

-spec unknown_and_ended_streams() -> [{doc, string()}].
unknown_and_ended_streams() -> [{doc, "next/1 on an unknown or ended stream says so; cancel/1 and ack/2 on one are harmless; kwargs reach the function."}].
-spec unknown_and_ended_streams(ct_suite:ct_config()) -> term().
unknown_and_ended_streams(_) ->
    ?assertEqual({error, unknown_stream}, py_stream:next(make_ref())),
    ?assertEqual(ok, py_stream:cancel(make_ref())),
    Ref = py_event_loop_pool:stream(?S, count, [], #{kwargs => #{n => 1}}),
    ?assertEqual({ok, [0]}, py_stream:to_list(Ref)),
    ?assertEqual({error, unknown_stream}, py_stream:next(Ref)),
    ?assertEqual(ok, py_stream:cancel(Ref)),
    %% Only the owner can read a pull stream.
    Ref2 = py_event_loop_pool:stream(?S, count, [3]),
    Self = self(),
    spawn_link(fun() -> Self ! {other, py_stream:next(Ref2, 100)} end),
    receive {other, Other} -> ?assertEqual({error, unknown_stream}, Other) end,
    ?assertEqual({ok, [0, 1, 2]}, py_stream:to_list(Ref2)),
    no_stream_left().

-spec unconvertible_argument() -> [{doc, string()}].
unconvertible_argument() -> [{doc, "An argument with no Python form ends the stream with a TypeError the port answers by itself."}].
-spec unconvertible_argument(ct_suite:ct_config()) -> term().
unconvertible_argument(_) ->
    Ref = py_event_loop_pool:stream(?S, count, [fun() -> ok end]),
    ?assertMatch({error, {python, <<"TypeError">>, _, <<>>}}, py_stream:next(Ref)),
    no_stream_left().

-spec batching_within_credit() -> [{doc, string()}].
batching_within_credit() -> [{doc, "Items produced in one iteration come as few packets, never more items than the credit, and batch => 1 sends them one by one."}].
-spec batching_within_credit(ct_suite:ct_config()) -> term().
batching_within_credit(_) ->
    Ref = py_event_loop_pool:stream(?S, count, [100], #{window => 10}),
    %% Batches land in the mailbox whole: wait for the first window.
    ok = pyport_ct:wait_until(fun() -> batches(Ref) =/= [] end, ?PROMPTLY),
    [Batch] = batches(Ref),
    ?assertEqual(lists:seq(0, 9), Batch),
    ?assertEqual({ok, lists:seq(0, 99)}, py_stream:to_list(Ref)),
    Ref1 = py_event_loop_pool:stream(?S, count, [5], #{window => 10, batch => 1}),
    ok = pyport_ct:wait_until(fun() -> length(batches(Ref1)) =:= 5 end, ?PROMPTLY),
    ?assertEqual([[I] || I <- lists:seq(0, 4)], batches(Ref1)),
    ?assertEqual({ok, lists:seq(0, 4)}, py_stream:to_list(Ref1)),
    no_stream_left().

-spec forged_results_end_the_stream() -> [{doc, string()}].
forged_results_end_the_stream() -> [{doc, "A result packet that Python forges for a stream's id (plain, or carrying object handles) ends that stream with {bad_stream, unexpected_result} at once; the loop serves on."}].
-spec forged_results_end_the_stream(ct_suite:ct_config()) -> term().
forged_results_end_the_stream(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    lists:foreach(
      fun(Reply) ->
              Ref = py_event_loop:stream(?L1, ?S, endless, [<<"forged">>],
                                         #{mode => active, window => 1}),
              ?assertEqual([0], data(Ref, 1)),
              Body = term_to_binary({result, Ref, Reply}),
              Frame = <<(byte_size(Body)):32, Body/binary>>,
              {ok, _} = py_event_loop:run(?L1, pyport_hostile, forge_raw, [Frame], #{}),
              receive
                  {py_stream, Ref, {error, {bad_stream, unexpected_result}}} -> ok
              after ?PROMPTLY -> ct:fail({no_stream_end, Reply})
              end
      end, [{ok, 1}, {handles, 1, [1]}]),
    ?assertMatch(#{os_pid := OsPid}, pyport_ct:loop_stats(1)),
    no_stream_left().

%% Issue 23: an item that cannot be sent ends its stream, and a generator
%% spinning between items is interrupted at the stream's deadline.

-spec unsendable_async_item_ends_stream() -> [{doc, string()}].
unsendable_async_item_ends_stream() -> [{doc, "An async generator's item that cannot be sent (an __erlang__ that raises, an erlang.handle(...)) ends the stream with an error naming its position and type, after the items before it; nothing is dropped silently."}].
-spec unsendable_async_item_ends_stream(ct_suite:ct_config()) -> term().
unsendable_async_item_ends_stream(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    lists:foreach(
      fun({Kind, Type, What}) ->
              Ref = py_event_loop:stream(?L1, ?S, abad_item_at, [3, Kind], #{}),
              ?assertEqual([{ok, 0}, {ok, 1}, {ok, 2}], [py_stream:next(Ref) || _ <- [1, 2, 3]]),
              {error, {python, Type, Msg, <<>>}} = py_stream:next(Ref),
              ?assertNotEqual(nomatch, binary:match(Msg, <<"stream item 3 ">>), Msg),
              ?assertNotEqual(nomatch, binary:match(Msg, What), Msg)
      end, [{hook, <<"RuntimeError">>, <<"_BadHook">>},
            {handle, <<"TypeError">>, <<"erlang.handle(object)">>}]),
    Active = py_event_loop:stream(?L1, ?S, abad_item_at, [2, hook], #{mode => active}),
    ?assertEqual([0, 1], data(Active, 2)),
    receive {py_stream, Active, End} ->
            ?assertMatch({error, {python, <<"RuntimeError">>, _, _}}, End)
    after ?PROMPTLY -> ct:fail(no_end)
    end,
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)),
    no_stream_left().

-spec handle_item_ends_sync_stream() -> [{doc, string()}].
handle_item_ends_sync_stream() -> [{doc, "A sync generator's erlang.handle(...) item ends the stream with a TypeError naming its position and type (streams carry terms, not handles)."}].
-spec handle_item_ends_sync_stream(ct_suite:ct_config()) -> term().
handle_item_ends_sync_stream(_) ->
    Ref = py_event_loop:stream(?L1, ?S, handle_item_at, [2], #{}),
    ?assertEqual([{ok, 0}, {ok, 1}], [py_stream:next(Ref) || _ <- [1, 2]]),
    {error, {python, <<"TypeError">>, Msg, <<>>}} = py_stream:next(Ref),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"stream item 2 (erlang.handle(object))">>), Msg),
    no_stream_left().

-spec busy_sync_generator_hits_timeout() -> [{doc, string()}].
busy_sync_generator_hits_timeout() -> [{doc, "A sync generator spinning between items past the stream's timeout is interrupted (the watchdog): {error, timeout}, the port is not killed and a bystander task gets its result."}].
-spec busy_sync_generator_hits_timeout(ct_suite:ct_config()) -> term().
busy_sync_generator_hits_timeout(_) ->
    busy_generator_is_interrupted(spins_after).

-spec busy_async_generator_is_interrupted() -> [{doc, string()}].
busy_async_generator_is_interrupted() -> [{doc, "An async generator spinning between items (never awaiting) past the stream's timeout or idle_timeout is interrupted by the watchdog: the stream ends with that reason, the port is not killed and a bystander task gets its result."}].
-spec busy_async_generator_is_interrupted(ct_suite:ct_config()) -> term().
busy_async_generator_is_interrupted(_) ->
    busy_generator_is_interrupted(aspins_after),
    Ref = py_event_loop:stream(?L1, ?S, aspins_after, [1, 60], #{idle_timeout => 300}),
    ?assertEqual({ok, 0}, py_stream:next(Ref)),
    ?assertEqual({error, idle_timeout}, py_stream:next(Ref, 10000)),
    ?assertEqual({ok, 4.0}, py_event_loop:run(?L1, math, sqrt, [16.0], #{})),
    no_stream_left().

-spec busy_generator_is_interrupted(atom()) -> ok.
busy_generator_is_interrupted(Func) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Bystander = py_event_loop:create_task(?L1, asyncio, sleep, [4, <<"bystander">>], #{}),
    Ref = py_event_loop:stream(?L1, ?S, Func, [1, 60], #{timeout => 500}),
    %% Item 0 comes at the deadline too, when the consumer's own timeout
    %% may have ended the stream already.
    ?assertEqual({error, timeout}, drain(Ref)),
    %% Longer than cancel_grace_ms: a port left spinning would be killed.
    ?assertEqual({ok, <<"bystander">>}, py_event_loop:await(Bystander, 10000)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)),
    no_stream_left().

-spec named_pool_active_stream() -> [{doc, string()}].
named_pool_active_stream() -> [{doc, "ack/2 and cancel/1 work on an active stream of a named pool's loop: credit reaches the port and the cancel closes the generator."}].
-spec named_pool_active_stream(ct_suite:ct_config()) -> term().
named_pool_active_stream(_) ->
    {ok, Sup} = py_pool:start_link(#{name => stream_pool, size => 1,
                                     python_path => [pyport_ct:helpers_dir()]}),
    {ok, Loop} = py_pool:get_loop(stream_pool),
    Ref = py_event_loop:stream(Loop, ?S, aendless, [<<"named">>], #{mode => active, window => 2}),
    ?assertEqual([0, 1], data(Ref, 2)),
    ?assertEqual([], data(Ref, 1, 300)),
    ok = py_stream:ack(Ref, 2),
    ?assertEqual([2, 3], data(Ref, 2)),
    ok = py_stream:cancel(Ref),
    %% The generator was closed: its entry leaves the named pool's loop.
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, py_pool:get_stats(stream_pool)) =:= 0 end, ?PROMPTLY),
    {ok, Far} = py_event_loop:run(Loop, ?S, how_far, [<<"named">>], #{}),
    timer:sleep(300),
    ?assertEqual({ok, Far}, py_event_loop:run(Loop, ?S, how_far, [<<"named">>], #{})),
    ?assertEqual([], [M || {py_stream, R, _} = M <- pyport_ct:mailbox(), R =:= Ref]),
    unlink(Sup),
    MRef = erlang:monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', MRef, _, _, _} -> ok after 15000 -> ct:fail(pool_not_stopped) end,
    no_stream_left().

-spec active_stream_alias_removed_at_end() -> [{doc, string()}].
active_stream_alias_removed_at_end() -> [{doc, "An active stream's reference stops being an alias at its end (done, error, or cancel): a message sent to it afterwards is dropped."}].
-spec active_stream_alias_removed_at_end(ct_suite:ct_config()) -> term().
active_stream_alias_removed_at_end(_) ->
    Done = py_event_loop_pool:stream(?S, count, [3], #{mode => active, window => 8}),
    ?assertEqual([0, 1, 2], data(Done, 3)),
    receive {py_stream, Done, done} -> ok after ?PROMPTLY -> ct:fail(no_done) end,
    Failed = py_event_loop_pool:stream(?S, afail_after, [1], #{mode => active}),
    ?assertEqual([0], data(Failed, 1)),
    receive {py_stream, Failed, {error, _}} -> ok after ?PROMPTLY -> ct:fail(no_error) end,
    Cancelled = py_event_loop_pool:stream(?S, aendless, [<<"alias">>], #{mode => active, window => 1}),
    ?assertEqual([0], data(Cancelled, 1)),
    ok = py_stream:cancel(Cancelled),
    lists:foreach(fun(Ref) -> Ref ! {py_stream, Ref, late} end, [Done, Failed, Cancelled]),
    timer:sleep(200),
    ?assertEqual([], [M || {py_stream, _, late} = M <- pyport_ct:mailbox()]),
    no_stream_left().

%% Helpers.

%% N data messages of an active stream (fewer if they stop coming).
-spec data(reference(), non_neg_integer()) -> list().
data(Ref, N) ->
    data(Ref, N, ?PROMPTLY).

-spec data(reference(), non_neg_integer(), timeout()) -> list().
data(_Ref, 0, _Wait) ->
    [];
data(Ref, N, Wait) ->
    receive
        {py_stream, Ref, {data, I}} -> [I | data(Ref, N - 1, Wait)]
    after Wait -> []
    end.

%% Reads a pull stream to its end; returns how it ended.
-spec drain(reference()) -> term().
drain(Ref) ->
    case py_stream:next(Ref, ?PROMPTLY) of
        {ok, _} -> drain(Ref);
        End -> End
    end.

%% The batches of a pull stream waiting in the mailbox.
-spec batches(reference()) -> [list()].
batches(Ref) ->
    {messages, Ms} = process_info(self(), messages),
    [Items || {py_stream, R, {batch, Items}} <- Ms, R =:= Ref].

%% Nothing of any stream is left: no pending entry on any loop, no stream
%% message or state in this process.
-spec no_stream_left() -> ok.
no_stream_left() ->
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, py_event_loop_pool:get_stats()) =:= 0 end, ?PROMPTLY),
    ?assertEqual([], [M || {py_stream, _, _} = M <- pyport_ct:mailbox()]),
    ?assertEqual([], [K || {{py_stream, _} = K, _} <- get()]),
    ok.

