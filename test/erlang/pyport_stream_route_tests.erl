%% The worker's stream routing fed what a hostile port could send: items
%% beyond the credit, an improper item list, a bad end, a result for a
%% stream; and the ordinary paths (pull batches, active items, ends).
-module(pyport_stream_route_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

%% A loop whose port is `cat`: what the routing writes to the port comes
%% back as the port's data, so the tests see the cancels it sends.
setup() ->
    Port = open_port({spawn, "cat"}, [binary]),
    Loop = pyport_calls:new(1, Port, #{},
                            #{max_pending => infinity, max_packet => 1 bsl 20,
                              cancel_grace_ms => 1000, handles => undefined,
                              streams => pyport_stream_route:new_table(),
                              os_pid => undefined, stats => pyport_ops_stats:new()}),
    {Loop, Port, pyport_calls:tables(Loop)}.

teardown({_Loop, Port, {P, B, C}}) ->
    port_close(Port),
    [ets:delete(T) || T <- [P, B, C]],
    _ = flush(),
    ok.

%% The cancel the port was sent, echoed back by `cat`.
cancel_sent(Port, Ref) ->
    Expected = iolist_to_binary(pyport_wire:cancel(Ref)),
    receive {Port, {data, Expected}} -> true
    after 5000 -> false
    end.

stream({_Loop, _Port, {Pending, ByCaller, Credit}}, Mode, Window) ->
    Ref = alias([explicit_unalias]),
    true = ets:insert(Pending, {Ref, {stream, self(), Mode}}),
    true = ets:insert(ByCaller, {{self(), Ref}}),
    true = ets:insert(Credit, {Ref, Window}),
    Ref.

-spec pull_batch_is_one_message_test() -> ok.
pull_batch_is_one_message_test() ->
    T = setup(),
    try
        Ref = stream(T, pull, 3),
        ok = pyport_stream_route:data(element(1, T), Ref, [a, b, c]),
        ?assertEqual([{py_stream, Ref, {batch, [a, b, c]}}], flush()),
        ok
    after
        teardown(T)
    end.

-spec active_items_are_one_message_each_test() -> ok.
active_items_are_one_message_each_test() ->
    T = setup(),
    try
        Ref = stream(T, active, 3),
        ok = pyport_stream_route:data(element(1, T), Ref, [a, b]),
        ?assertEqual([{py_stream, Ref, {data, a}}, {py_stream, Ref, {data, b}}], flush()),
        ok
    after
        teardown(T)
    end.

-spec items_beyond_credit_end_the_stream_test() -> ok.
items_beyond_credit_end_the_stream_test() ->
    {_, _, {Pending, _, Credit}} = T = setup(),
    try
        Ref = stream(T, pull, 2),
        ok = pyport_stream_route:data(element(1, T), Ref, [a]),
        ok = pyport_stream_route:data(element(1, T), Ref, [b, c]),
        ?assert(cancel_sent(element(2, T), Ref)),
        ?assertEqual([{py_stream, Ref, {batch, [a]}},
                      {py_stream, Ref, {error, {bad_stream, credit_exceeded}}}], flush()),
        ?assertEqual([], ets:lookup(Pending, Ref)),
        ?assertEqual([], ets:lookup(Credit, Ref)),
        ok
    after
        teardown(T)
    end.

-spec improper_items_end_the_stream_test() -> ok.
improper_items_end_the_stream_test() ->
    T = setup(),
    try
        Ref = stream(T, active, 5),
        %% [a | b], decoded as a port's frame would be (dialyzer rightly
        %% refuses to see one built in code).
        Improper = binary_to_term(<<131, 108, 1:32, 100, 1:16, $a, 100, 1:16, $b>>),
        ok = pyport_stream_route:data(element(1, T), Ref, Improper),
        ?assert(cancel_sent(element(2, T), Ref)),
        ?assertEqual([{py_stream, Ref, {error, {bad_stream, bad_items}}}], flush()),
        ok
    after
        teardown(T)
    end.

-spec a_bad_end_is_an_error_test() -> ok.
a_bad_end_is_an_error_test() ->
    T = setup(),
    try
        Ref = stream(T, pull, 1),
        ok = pyport_stream_route:ended(element(1, T), Ref, weird),
        ?assertEqual([{py_stream, Ref, {error, {bad_stream, {bad_end, weird}}}}], flush()),
        ok
    after
        teardown(T)
    end.

-spec end_clears_the_entries_test() -> ok.
end_clears_the_entries_test() ->
    {_, _, {Pending, ByCaller, Credit}} = T = setup(),
    try
        Ref = stream(T, pull, 1),
        ok = pyport_stream_route:ended(element(1, T), Ref, done),
        ?assertEqual([{py_stream, Ref, done}], flush()),
        ?assertEqual(0, ets:info(Pending, size) + ets:info(ByCaller, size)
                       + ets:info(Credit, size)),
        ok
    after
        teardown(T)
    end.

-spec answer_to_a_cancel_clears_the_entry_test() -> ok.
answer_to_a_cancel_clears_the_entry_test() ->
    {_, _, {Pending, _, Credit}} = T = setup(),
    try
        Ref = stream(T, pull, 1),
        true = ets:insert(Pending, {Ref, {cancelled, 0}}),
        ok = pyport_stream_route:data(element(1, T), Ref, [late]),
        ok = pyport_stream_route:ended(element(1, T), Ref, {error, cancelled}),
        ?assertEqual([], flush()),
        ?assertEqual(0, ets:info(Pending, size) + ets:info(Credit, size)),
        ok
    after
        teardown(T)
    end.

-spec a_stream_end_for_a_task_changes_nothing_test() -> ok.
a_stream_end_for_a_task_changes_nothing_test() ->
    {_, _, {Pending, _, _}} = T = setup(),
    try
        Task = make_ref(),
        Cancelled = make_ref(),
        true = ets:insert(Pending, [{Task, self()}, {Cancelled, {cancelled, 0}}]),
        ok = pyport_stream_route:ended(element(1, T), Task, done),
        ok = pyport_stream_route:ended(element(1, T), Cancelled, done),
        ?assertEqual([], flush()),
        ?assertEqual(2, ets:info(Pending, size)),
        ok
    after
        teardown(T)
    end.

-spec data_for_a_task_or_unknown_id_is_dropped_test() -> ok.
data_for_a_task_or_unknown_id_is_dropped_test() ->
    {_, _, {Pending, _, _}} = T = setup(),
    try
        Task = make_ref(),
        true = ets:insert(Pending, {Task, self()}),
        ok = pyport_stream_route:data(element(1, T), Task, [x]),
        ok = pyport_stream_route:data(element(1, T), make_ref(), [x]),
        ok = pyport_stream_route:data(element(1, T), not_even_a_ref, [x]),
        ?assertEqual([], flush()),
        ok
    after
        teardown(T)
    end.

-spec exit_reaches_every_stream_test() -> ok.
exit_reaches_every_stream_test() ->
    {Loop, _, {Pending, _, _}} = T = setup(),
    try
        A = stream(T, pull, 1),
        B = stream(T, active, 1),
        Task = alias(),
        true = ets:insert(Pending, [{Task, self()}, {make_ref(), {cancelled, 0}}]),
        ?assertEqual(1, pyport_calls:port_exited(Loop, {python_exit, 137})),
        ?assertEqual(lists:sort([{py_stream, A, {error, {python_exit, 137}}},
                                  {py_stream, B, {error, {python_exit, 137}}},
                                  {Task, {error, {python_exit, 137}}}]),
                      lists:sort(flush())),
        ?assertEqual(0, ets:info(Pending, size)),
        ok
    after
        teardown(T)
    end.

flush() ->
    receive M -> [M | flush()]
    after 0 -> []
    end.
