%% pyport_actor_route (untrusted actor packets), the actor wire encoders and
%% py_actor:child_spec/1.
-module(py_actor_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().
%% Bad specs on purpose.
-dialyzer([no_fail_call]).

%% A route's context (a loop whose port is `cat`: routing writes nothing)
%% and the loop's pending table.
-spec with_pending(fun(({ets:tid(), pyport_route:context()}) -> term())) -> term().
with_pending(Fun) ->
    Port = open_port({spawn, "cat"}, [binary]),
    Loop = pyport_calls:new(1, Port, #{},
                            #{max_pending => infinity, max_packet => 1 bsl 20,
                              cancel_grace_ms => 1000, handles => undefined,
                              streams => pyport_stream_route:new_table(),
                              os_pid => undefined, stats => pyport_ops_stats:new()}),
    {Pending, ByCaller, Credit} = pyport_calls:tables(Loop),
    Context = #{index => 1, loop => Loop, port => Port, max_packet => 1 bsl 20,
                output => logger, send_policy => py_callback:send_policy(any, ByCaller)},
    try
        Fun({Pending, Context})
    after
        port_close(Port),
        _ = [ets:delete(T) || T <- [Pending, ByCaller, Credit]]
    end.

-spec routes_to_the_pending_entrys_process_test() -> term().
routes_to_the_pending_entrys_process_test() ->
    with_pending(fun({Pending, Context}) ->
        Id = make_ref(),
        true = ets:insert(Pending, {Id, {actor, self()}}),
        ?assertEqual(ok, pyport_actor_route:route({actor_ack, Id, 3}, Context)),
        ?assertEqual(ok, pyport_actor_route:route({actor_started, Id}, Context)),
        ?assertEqual(ok, pyport_actor_route:route({actor_reply, Id, 7, answer}, Context)),
        ?assertEqual([{py_actor, Id, {ack, 3}}, {py_actor, Id, started},
                      {py_actor, Id, {reply, 7, answer}}], flush())
    end).

-spec plain_callers_get_no_actor_packets_test() -> term().
plain_callers_get_no_actor_packets_test() ->
    with_pending(fun({Pending, Context}) ->
        %% A task's or a stream's entry: a forged actor packet naming it
        %% reaches nobody (issue 23, send policy).
        Task = make_ref(),
        Stream = make_ref(),
        true = ets:insert(Pending, [{Task, self()}, {Stream, {stream, self(), active}}]),
        [?assertEqual(ok, pyport_actor_route:route(P, Context))
         || Id <- [Task, Stream],
            P <- [{actor_reply, Id, 1, forged}, {actor_started, Id}, {actor_ack, Id, 1}]],
        ?assertEqual([], flush())
    end).

-spec unknown_or_cancelled_ids_reach_nobody_test() -> term().
unknown_or_cancelled_ids_reach_nobody_test() ->
    with_pending(fun({Pending, Context}) ->
        Cancelled = make_ref(),
        true = ets:insert(Pending, {Cancelled, {cancelled, 123}}),
        ?assertEqual(ok, pyport_actor_route:route({actor_ack, make_ref(), 1}, Context)),
        ?assertEqual(ok, pyport_actor_route:route({actor_ack, Cancelled, 1}, Context)),
        ?assertEqual([], flush())
    end).

-spec malformed_fields_are_refused_test() -> term().
malformed_fields_are_refused_test() ->
    with_pending(fun({Pending, Context}) ->
        Id = make_ref(),
        true = ets:insert(Pending, {Id, {actor, self()}}),
        [?assertEqual(malformed, pyport_actor_route:route(P, Context))
         || P <- [{actor_ack, Id, 0}, {actor_ack, Id, -1}, {actor_ack, Id, 1 bsl 40},
                  {actor_ack, Id, many}, {actor_ack, not_a_ref, 1},
                  {actor_reply, Id, 0, x}, {actor_reply, Id, <<"t">>, x},
                  {actor_started, self()}]],
        ?assertEqual([], flush())
    end).

-spec wire_encoders_frame_the_terms_test() -> term().
wire_encoders_frame_the_terms_test() ->
    Id = make_ref(),
    [<<Size:32>>, Bin] = pyport_wire:actor_msg(Id, {hello, 1}),
    ?assertEqual(Size, byte_size(Bin)),
    ?assertEqual({actor_msg, Id, {hello, 1}}, binary_to_term(Bin)),
    [_, Start] = pyport_wire:actor_start(Id, m, f, [1], #{}, #{window => 8}),
    ?assertEqual({actor_start, Id, m, f, [1], #{}, #{window => 8}}, binary_to_term(Start)).

-spec actor_packets_are_recognised_test() -> term().
actor_packets_are_recognised_test() ->
    Id = make_ref(),
    [?assertMatch({ok, P, 0}, pyport_wire:decode(term_to_binary(P), 1 bsl 20, 100))
     || P <- [{actor_started, Id}, {actor_ack, Id, 1}, {actor_reply, Id, 1, x}]].

-spec child_spec_test() -> term().
child_spec_test() ->
    ?assertEqual(#{id => c, start => {py_actor, start_link, [m, 'C', [1], #{loop => 2}]},
                   restart => transient, shutdown => 5000, type => worker,
                   modules => [py_actor]},
                 py_actor:child_spec(#{id => c, module => m, function => 'C', args => [1],
                                       opts => #{loop => 2}, restart => transient})),
    ?assertMatch(#{id := {py_actor, m, f}, start := {py_actor, start_link, [m, f, [], #{}]}},
                 py_actor:child_spec(#{module => m, function => f})),
    ?assertError({badarg, _}, py_actor:child_spec(#{module => m})).

-spec flush() -> [term()].
flush() ->
    receive M -> [M | flush()] after 0 -> [] end.
