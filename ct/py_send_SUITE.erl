%% erlang.send from Python (to pids, registered names, aliases; dead and
%% unknown destinations), erlang.self, erlang.whereis, and the bound on
%% the atoms Python may create.
-module(py_send_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(I, pyport_interop_helpers).

-spec all() -> [{group, atom()}].
all() ->
    [{group, send}, {group, identity}, {group, atoms}].

-spec groups() -> [{atom(), list(), [atom()]}].
groups() ->
    [{send, [],
      [send_to_pid, send_from_async_code, send_terms, send_to_registered_name,
       send_to_alias, send_to_dead_pid, send_to_unregistered_name,
       send_to_bad_destination, send_unconvertible_term, send_keeps_order,
       send_to_unconnected_node_is_refused, unanswered_send_refused_is_logged]},
     {identity, [],
      [self_is_the_caller, self_in_create_and_spawn_task, self_outside_a_task_is_the_worker,
       whereis_names]},
     {atoms, [],
      [atom_limit]}].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    stop().

-spec init_per_group(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_group(atoms, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 1}, {max_atoms, 200}]),
    Config;
init_per_group(_, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 2}]),
    Config.

-spec end_per_group(atom(), ct_suite:ct_config()) -> ok.
end_per_group(_, _Config) ->
    stop().

-spec stop() -> ok.
stop() ->
    ok = pyport_ct:stop(),
    ok = application:unset_env(pyport, max_atoms).

%% -- send -------------------------------------------------------------------------

-spec send_to_pid() -> [{doc, string()}].
send_to_pid() -> [{doc, "erlang.send(pid, term) from plain Python code delivers the term to that process."}].
-spec send_to_pid(ct_suite:ct_config()) -> term().
send_to_pid(_) ->
    ?assertEqual({ok, <<"sent">>}, py_event_loop:run(?I, send, [self(), <<"hello">>])),
    ?assertEqual(<<"hello">>, next_message()).

-spec send_from_async_code() -> [{doc, string()}].
send_from_async_code() -> [{doc, "erlang.send works from a coroutine too."}].
-spec send_from_async_code(ct_suite:ct_config()) -> term().
send_from_async_code(_) ->
    ?assertEqual({ok, <<"sent">>}, py_event_loop:run(?I, send_async, [self(), 42])),
    ?assertEqual(42, next_message()).

-spec send_terms() -> [{doc, string()}].
send_terms() -> [{doc, "The message converts by the type table: tuples, lists, maps, atoms, pids, bytes."}].
-spec send_terms(ct_suite:ct_config()) -> term().
send_terms(_) ->
    Term = {progress, [1, 2.5, <<"x">>], #{<<"k">> => true}, self(), {bytes, <<1, 2>>}},
    ?assertEqual({ok, <<"sent">>}, py_event_loop:run(?I, send, [self(), Term])),
    ?assertEqual({<<"progress">>, [1, 2.5, <<"x">>], #{<<"k">> => true}, self(), <<1, 2>>},
                 next_message()).

-spec send_to_registered_name() -> [{doc, string()}].
send_to_registered_name() -> [{doc, "erlang.send(erlang.atom(name), term) delivers to the process registered under that name."}].
-spec send_to_registered_name(ct_suite:ct_config()) -> term().
send_to_registered_name(_) ->
    true = register(py_send_suite_target, self()),
    try
        ?assertEqual({ok, <<"sent">>},
                     py_event_loop:run(?I, send_to_name, [<<"py_send_suite_target">>, by_name])),
        ?assertEqual(<<"by_name">>, next_message())
    after
        unregister(py_send_suite_target)
    end.

-spec send_to_alias() -> [{doc, string()}].
send_to_alias() -> [{doc, "A process alias (a reference) is a destination too."}].
-spec send_to_alias(ct_suite:ct_config()) -> term().
send_to_alias(_) ->
    Alias = alias(),
    ?assertEqual({ok, <<"sent">>}, py_event_loop:run(?I, send, [Alias, via_alias])),
    ?assertEqual(<<"via_alias">>, next_message()),
    true = unalias(Alias).

-spec send_to_dead_pid() -> [{doc, string()}].
send_to_dead_pid() -> [{doc, "erlang.send to a process that has exited raises erlang.ProcessError in Python; nothing crashes."}].
-spec send_to_dead_pid(ct_suite:ct_config()) -> term().
send_to_dead_pid(_) ->
    {Dead, MRef} = spawn_monitor(fun() -> ok end),
    receive {'DOWN', MRef, process, Dead, _} -> ok end,
    {ok, [<<"ProcessError">>, Msg]} = py_event_loop:run(?I, send_error, [Dead, x]),
    ?assertMatch({_, _}, binary:match(Msg, <<"no process">>)),
    %% Uncaught, it fails the task with that error.
    ?assertMatch({error, {python, <<"ProcessError">>, _, _}},
                 py_event_loop:run(?I, send, [Dead, x])),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

-spec send_to_unregistered_name() -> [{doc, string()}].
send_to_unregistered_name() -> [{doc, "erlang.send to a name nobody registered raises erlang.ProcessError."}].
-spec send_to_unregistered_name(ct_suite:ct_config()) -> term().
send_to_unregistered_name(_) ->
    ?assertMatch({ok, [<<"ProcessError">>, _]},
                 py_event_loop:run(?I, send_error, [<<"py_send_suite_nobody">>, x],
                                   #{kwargs => #{as_name => true}})).

-spec send_to_unconnected_node_is_refused() -> [{doc, string()}].
send_to_unconnected_node_is_refused() -> [{doc, "erlang.send to a {Name, Node} whose node is not connected raises ProcessError (noconnection) at once; no connection is attempted and the message is dropped."}].
-spec send_to_unconnected_node_is_refused(ct_suite:ct_config()) -> term().
send_to_unconnected_node_is_refused(_) ->
    {ok, [0, 1, Msg]} = py_event_loop:run(pyport_callback_attack, send_flood,
                                          [<<"py_send_nobody@nohost">>, <<"py_send_sink">>,
                                           1, 1]),
    ?assertMatch({_, _}, binary:match(Msg, <<"noconnection">>)),
    ?assertEqual([], nodes(connected)),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

-spec unanswered_send_refused_is_logged() -> [{doc, string()}].
unanswered_send_refused_is_logged() -> [{doc, "Fire-and-forget sends ({send, Dest, Msg}, no answer) that the distribution refuses are dropped and logged once for a burst, with the destination and the reason."}].
-spec unanswered_send_refused_is_logged(ct_suite:ct_config()) -> term().
unanswered_send_refused_is_logged(_) ->
    ok = pyport_ct:capture_logs(),
    try
        ?assertEqual({ok, 100}, py_event_loop:run({pyport_loop, 1}, pyport_callback_attack,
                                                  send_unanswered,
                                                  [<<"py_send_nobody@nohost">>,
                                                   <<"py_send_sink">>, 100], #{})),
        Mentions = fun(E) -> pyport_ct:log_mentions(E, <<"dropped (noconnection)">>) end,
        _ = pyport_ct:await_log(Mentions, 10000),
        %% A burst is one report, not one per message.
        ?assertEqual({ok, 2.0}, py_event_loop:run({pyport_loop, 1}, math, sqrt, [4.0], #{})),
        Reports = [E || {pyport_ct_log, E} <- pyport_ct:mailbox(), Mentions(E)],
        ?assert(length(Reports) < 10)
    after
        pyport_ct:release_logs()
    end.

-spec send_to_bad_destination() -> [{doc, string()}].
send_to_bad_destination() -> [{doc, "A destination that is not a pid, atom, alias or {Name, Node} is a TypeError before anything is sent."}].
-spec send_to_bad_destination(ct_suite:ct_config()) -> term().
send_to_bad_destination(_) ->
    [?assertMatch({ok, [<<"TypeError">>, _]}, py_event_loop:run(?I, send_error, [Dest, x]))
     || Dest <- [<<"a_binary">>, 42, none, [self()]]],
    ?assertEqual([], pyport_ct:mailbox()).

-spec send_unconvertible_term() -> [{doc, string()}].
send_unconvertible_term() -> [{doc, "A message outside the type table (a Python set) is a TypeError and nothing is sent."}].
-spec send_unconvertible_term(ct_suite:ct_config()) -> term().
send_unconvertible_term(_) ->
    {ok, [<<"TypeError">>, Msg]} = py_event_loop:run(?I, send_unconvertible, [self()]),
    ?assertMatch({_, _}, binary:match(Msg, <<"set">>)),
    ?assertEqual([], pyport_ct:mailbox()).

-spec send_keeps_order() -> [{doc, string()}].
send_keeps_order() -> [{doc, "Messages sent from one task arrive in the order they were sent."}].
-spec send_keeps_order(ct_suite:ct_config()) -> term().
send_keeps_order(_) ->
    ?assertEqual({ok, 500}, py_event_loop:run(?I, send_many, [self(), 500], #{timeout => 30000})),
    Got = [next_message() || _ <- lists:seq(1, 501)],
    ?assertEqual([{<<"item">>, N} || N <- lists:seq(0, 499)] ++ [<<"done">>], Got).

%% -- self, whereis ----------------------------------------------------------------

-spec self_is_the_caller() -> [{doc, string()}].
self_is_the_caller() -> [{doc, "erlang.self() in a task is the Erlang process that submitted it, in plain and async code, so a task can reply to it."}].
-spec self_is_the_caller(ct_suite:ct_config()) -> term().
self_is_the_caller(_) ->
    Self = self(),
    ?assertEqual({ok, Self}, py_event_loop:run(?I, self_pid, [])),
    ?assertEqual({ok, <<"sent">>}, py_event_loop:run(?I, send_to_self, [ping])),
    ?assertEqual(<<"ping">>, next_message()),
    ?assertEqual({ok, <<"sent">>}, py_event_loop:run(?I, send_to_self_async, [pong])),
    ?assertEqual(<<"pong">>, next_message()),
    Other = spawn_link(fun() -> Self ! {other, self(), py_event_loop_pool:run(?I, self_pid, [])} end),
    receive {other, Other, R} -> ?assertEqual({ok, Other}, R) after 5000 -> ct:fail(no_reply) end.

-spec self_in_create_and_spawn_task() -> [{doc, string()}].
self_in_create_and_spawn_task() -> [{doc, "create_task and spawn_task carry the caller too: a spawned task can message the process that spawned it."}].
-spec self_in_create_and_spawn_task(ct_suite:ct_config()) -> term().
self_in_create_and_spawn_task(_) ->
    Ref = py_event_loop:create_task(?I, self_pid, []),
    ?assertEqual({ok, self()}, py_event_loop:await(Ref)),
    ok = py_event_loop:spawn_task(?I, send_to_self_async, [spawned]),
    ?assertEqual(<<"spawned">>, next_message()).

-spec self_outside_a_task_is_the_worker() -> [{doc, string()}].
self_outside_a_task_is_the_worker() -> [{doc, "Outside a task's context (a thread) erlang.self() is the worker process that owns the port."}].
-spec self_outside_a_task_is_the_worker(ct_suite:ct_config()) -> term().
self_outside_a_task_is_the_worker(_) ->
    #{worker := Worker} = pyport_ct:loop_stats(1),
    ?assertEqual({ok, Worker}, py_event_loop:run(?I, self_pid_in_thread, [])).

-spec whereis_names() -> [{doc, string()}].
whereis_names() -> [{doc, "erlang.whereis(name) gives the registered pid, or None for a name that is not registered or not even an atom."}].
-spec whereis_names(ct_suite:ct_config()) -> term().
whereis_names(_) ->
    ?assertEqual({ok, whereis(py_callback)}, py_event_loop:run(?I, whereis, [<<"py_callback">>])),
    ?assertEqual({ok, none}, py_event_loop:run(?I, whereis, [<<"kernel">>])),
    Fresh = iolist_to_binary(io_lib:format("py_send_suite_never_an_atom_~b",
                                           [erlang:unique_integer([positive])])),
    ?assertEqual({ok, none}, py_event_loop:run(?I, whereis, [Fresh])),
    ?assertError(badarg, binary_to_existing_atom(Fresh, utf8)).

%% -- atoms ---------------------------------------------------------------------------

-spec atom_limit() -> [{doc, string()}].
atom_limit() -> [{doc, "With max_atoms set, Python can create that many distinct atoms and then gets erlang.AtomLimitError; known names keep working."}].
-spec atom_limit(ct_suite:ct_config()) -> term().
atom_limit(_) ->
    {ok, [Used, 200]} = py_event_loop:run(?I, atom_usage, []),
    ?assert(Used < 200),
    ?assertEqual({ok, [<<"limit">>, 200 - Used]},
                 py_event_loop:run(?I, make_atoms, [<<"py_send_suite_atom_">>, 1000])),
    ?assertEqual({ok, [<<"ok">>, 10]},
                 py_event_loop:run(?I, make_atoms, [<<"py_send_suite_atom_">>, 10])),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

%% -- helpers ---------------------------------------------------------------------------

-spec next_message() -> term().
next_message() ->
    receive
        Msg -> Msg
    after 5000 ->
        ct:fail(no_message)
    end.
