%% Object handles (docs/handles.md): Python objects that stay in the port,
%% owned by Erlang processes. Fixtures: ct/python/pyport_handle.py.
-module(py_handle_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(F, pyport_handle).
-define(NUM_LOOPS, 2).
-define(LIMIT, 5).

-spec all() -> [atom()].
all() ->
    [stateful_object_called_10k_times, handles_passed_between_tasks,
     auto_on_mixed_result, python_made_handle_and_erlang_hook,
     owner_death_releases_object, transfer_moves_ownership, release_twice,
     stale_after_port_kill, foreign_loop_handle, live_handle_limit,
     handle_in_nested_argument, create_task_with_handle_result].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(live_handle_limit, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS}, {max_handles, ?LIMIT}]),
    Config;
init_per_testcase(_, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS}]),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    pyport_ct:stop().

-spec stateful_object_called_10k_times() -> [{doc, string()}].
stateful_object_called_10k_times() -> [{doc, "An object created once keeps its state over 10,000 method calls."}].
-spec stateful_object_called_10k_times(ct_suite:ct_config()) -> term().
stateful_object_called_10k_times(_) ->
    {ok, C} = py_event_loop_pool:run(?F, counter, [0], #{result => handle}),
    lists:foreach(fun(I) -> {ok, I} = py_obj:call(C, add, [1]) end, lists:seq(1, 10000)),
    {ok, 10000} = py_obj:getattr(C, n),
    ok = py_obj:setattr(C, n, 5),
    {ok, 7} = py_obj:call(C, add, [], #{k => 2}),
    {ok, #{type := <<"Counter">>, module := <<"pyport_handle">>, repr := <<"Counter(7)">>}} =
        py_obj:info(C),
    ok.

-spec handles_passed_between_tasks() -> [{doc, string()}].
handles_passed_between_tasks() -> [{doc, "A handle is an argument and a keyword value of later tasks, which get the object itself; the processes its owner shares it with may use it too."}].
-spec handles_passed_between_tasks(ct_suite:ct_config()) -> term().
handles_passed_between_tasks(_) ->
    {ok, C} = py_event_loop_pool:run(?F, counter, [3], #{result => handle}),
    {ok, 3} = py_event_loop_pool:run(?F, count_of, [C]),
    {ok, 3} = py_event_loop_pool:run(?F, count_of, [], #{kwargs => #{c => C}}),
    %% Another process (maybe another loop): routed to the handle's loop.
    Self = self(),
    Users = [spawn_link(fun() ->
                                receive go -> ok end,
                                Self ! {I, py_event_loop_pool:run(?F, count_of, [C])}
                        end) || I <- lists:seq(1, 8)],
    [begin ok = py_obj:share(C, P), P ! go end || P <- Users],
    [receive {I, R} -> {ok, 3} = R end || I <- lists:seq(1, 8)],
    %% A method call whose result is itself kept as a handle.
    {ok, Bound} = py_obj:call(C, add, [], #{}, #{result => handle}),
    {ok, <<"int">>} = type_of(Bound),
    {ok, 4} = py_obj:value(Bound),
    ok.

-spec auto_on_mixed_result() -> [{doc, string()}].
auto_on_mixed_result() -> [{doc, "result => auto converts what has a term form (an __erlang__ hook included) and keeps only the rest as handles."}].
-spec auto_on_mixed_result(ct_suite:ct_config()) -> term().
auto_on_mixed_result(_) ->
    {ok, [1, <<"two">>, C3, #{<<"inner">> := C4}, {point, 5, 6}]} =
        py_event_loop_pool:run(?F, mixed, [], #{result => auto}),
    {ok, 3} = py_obj:getattr(C3, n),
    {ok, 4} = py_obj:getattr(C4, n),
    %% A convertible value comes back as a plain term.
    {ok, [1, 2]} = py_event_loop_pool:run(json, loads, [<<"[1, 2]">>], #{result => auto}),
    %% Without the option, the same result is a TypeError, as before.
    {error, {python, <<"TypeError">>, _, _}} = py_event_loop_pool:run(?F, mixed, []),
    ok.

-spec python_made_handle_and_erlang_hook() -> [{doc, string()}].
python_made_handle_and_erlang_hook() -> [{doc, "erlang.handle(obj) in a plain result gives Erlang a handle; __erlang__ gives an object's term form, also through py_obj:value/1."}].
-spec python_made_handle_and_erlang_hook(ct_suite:ct_config()) -> term().
python_made_handle_and_erlang_hook(_) ->
    {ok, #{<<"c">> := C, <<"n">> := 1}} = py_event_loop_pool:run(?F, made, []),
    {ok, 8} = py_obj:call(C, add, []),
    {ok, {point, 1, 2}} = py_event_loop_pool:run(?F, point, [1, 2]),
    {ok, P} = py_event_loop_pool:run(?F, point, [1, 2], #{result => handle}),
    {ok, {point, 1, 2}} = py_obj:value(P),
    ok.

-spec owner_death_releases_object() -> [{doc, string()}].
owner_death_releases_object() -> [{doc, "When the owner exits, the object is freed in Python (its weakref.finalize messages Erlang) and the live count drops."}].
-spec owner_death_releases_object(ct_suite:ct_config()) -> term().
owner_death_releases_object(_) ->
    Self = self(),
    {Owner, MRef} = spawn_monitor(
                      fun() ->
                              {ok, C} = py_event_loop_pool:run(?F, watched, [Self, <<"owned">>],
                                                               #{result => handle}),
                              ok = py_obj:share(C, Self),
                              Self ! {handle, C},
                              receive stop -> ok end
                      end),
    C = receive {handle, H} -> H after 5000 -> error(no_handle) end,
    {ok, 0} = py_obj:getattr(C, n),
    Loop = element(2, C),
    1 = handles(Loop),
    nothing = receive {finalized, _} = F -> F after 200 -> nothing end,
    Owner ! stop,
    receive {'DOWN', MRef, process, Owner, _} -> ok end,
    receive {finalized, <<"owned">>} -> ok after 5000 -> error(not_finalized) end,
    ok = pyport_ct:wait_until(fun() -> handles(Loop) =:= 0 end, 5000),
    {error, stale_handle} = py_obj:getattr(C, n),
    ok.

-spec transfer_moves_ownership() -> [{doc, string()}].
transfer_moves_ownership() -> [{doc, "transfer/2 hands ownership over: the old owner's exit keeps the object, the new owner's frees it; only the owner may transfer."}].
-spec transfer_moves_ownership(ct_suite:ct_config()) -> term().
transfer_moves_ownership(_) ->
    Self = self(),
    {ok, C} = py_event_loop_pool:run(?F, watched, [Self, <<"moved">>], #{result => handle}),
    {New, NewRef} = spawn_monitor(fun() -> receive stop -> ok end end),
    {error, not_owner} = rpc_in(fun() -> py_obj:transfer(C, self()) end),
    ok = py_obj:transfer(C, New),
    {error, not_owner} = py_obj:release(C),
    %% The former owner may no longer use it either.
    {error, not_owner} = py_obj:getattr(C, n),
    New ! stop,
    receive {'DOWN', NewRef, process, New, _} -> ok end,
    receive {finalized, <<"moved">>} -> ok after 5000 -> error(not_finalized) end,
    %% To a process that is already dead: released at once.
    {ok, D} = py_event_loop_pool:run(?F, watched, [Self, <<"to_dead">>], #{result => handle}),
    ok = py_obj:transfer(D, New),
    receive {finalized, <<"to_dead">>} -> ok after 5000 -> error(not_finalized) end,
    ok.

-spec release_twice() -> [{doc, string()}].
release_twice() -> [{doc, "release/1 frees the object; a second release, and any later use, is stale_handle."}].
-spec release_twice(ct_suite:ct_config()) -> term().
release_twice(_) ->
    {ok, C} = py_event_loop_pool:run(?F, watched, [self(), <<"released">>], #{result => handle}),
    ok = py_obj:release(C),
    receive {finalized, <<"released">>} -> ok after 5000 -> error(not_finalized) end,
    {error, stale_handle} = py_obj:release(C),
    {error, stale_handle} = py_obj:call(C, add, []),
    0 = handles(element(2, C)),
    ok.

-spec stale_after_port_kill() -> [{doc, string()}].
stale_after_port_kill() -> [{doc, "After the port is killed and restarted, an old handle is stale_handle, never the fresh port's object with the same number."}].
-spec stale_after_port_kill(ct_suite:ct_config()) -> term().
stale_after_port_kill(_) ->
    {ok, C} = py_event_loop_pool:run(?F, counter, [1], #{result => handle}),
    Loop = element(2, C),
    #{os_pid := OsPid} = pyport_ct:loop_stats(Loop),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    _ = pyport_ct:await_restart(Loop, OsPid),
    %% The fresh port's handle number 1.
    {ok, Fresh} = py_event_loop:run({pyport_loop, Loop}, ?F, counter, [99], #{result => handle}),
    ?assertEqual(element(4, C), element(4, Fresh)),
    {error, stale_handle} = py_obj:getattr(C, n),
    {error, stale_handle} = py_event_loop_pool:run(?F, count_of, [C]),
    {error, stale_handle} = py_obj:release(C),
    {ok, 99} = py_obj:getattr(Fresh, n),
    ok.

-spec foreign_loop_handle() -> [{doc, string()}].
foreign_loop_handle() -> [{doc, "A handle given to a task on another loop, with handles of two loops, or of another node, is a clear error."}].
-spec foreign_loop_handle(ct_suite:ct_config()) -> term().
foreign_loop_handle(_) ->
    {ok, C1} = py_event_loop:run({pyport_loop, 1}, ?F, counter, [1], #{result => handle}),
    {ok, C2} = py_event_loop:run({pyport_loop, 2}, ?F, counter, [2], #{result => handle}),
    {error, {foreign_handle, {loop, 1}}} =
        py_event_loop:run({pyport_loop, 2}, ?F, count_of, [C1], #{}),
    {error, {foreign_handle, {loop, 1}}} =
        py_event_loop:await(py_event_loop:create_task({pyport_loop, 2}, ?F, count_of, [C1], #{})),
    {error, mixed_loops} = py_event_loop_pool:run(?F, total, [[C1, C2], #{}]),
    %% A handle whose incarnation is a reference of another node.
    Remote = setelement(3, C1, binary_to_term(remote_ref())),
    {error, {foreign_handle, {node, 'other@nohost'}}} = py_event_loop_pool:run(?F, count_of, [Remote]),
    %% Python checks too: a forged incarnation never resolves.
    Forged = setelement(3, C1, make_ref()),
    {error, stale_handle} = py_event_loop:run({pyport_loop, 1}, ?F, count_of, [Forged],
                                              #{}),
    ok.

-spec live_handle_limit() -> [{doc, string()}].
live_handle_limit() -> [{doc, "A loop holds at most max_handles live handles: beyond, handle_limit; released handles make room; get_stats counts them."}].
-spec live_handle_limit(ct_suite:ct_config()) -> term().
live_handle_limit(_) ->
    {ok, Loop} = py_event_loop_pool:get_loop(),
    Hs = [begin {ok, H} = py_event_loop:run(Loop, ?F, counter, [I], #{result => handle}), H end
          || I <- lists:seq(1, ?LIMIT)],
    ?LIMIT = handles(element(2, Loop)),
    {error, {handle_limit, ?LIMIT}} = py_event_loop:run(Loop, ?F, counter, [0], #{result => handle}),
    {error, {handle_limit, ?LIMIT}} = py_event_loop:run(Loop, ?F, mixed, [], #{result => auto}),
    ok = py_obj:release(hd(Hs)),
    {ok, _} = py_event_loop:run(Loop, ?F, counter, [0], #{result => handle}),
    ?LIMIT = handles(element(2, Loop)),
    ok.

-spec handle_in_nested_argument() -> [{doc, string()}].
handle_in_nested_argument() -> [{doc, "Handles deep inside lists, tuples and maps of the arguments reach Python as the objects."}].
-spec handle_in_nested_argument(ct_suite:ct_config()) -> term().
handle_in_nested_argument(_) ->
    Hs = [begin {ok, H} = py_event_loop_pool:run(?F, counter, [I], #{result => handle}), H end
          || I <- [1, 2, 3]],
    [A, B, C] = Hs,
    {ok, 6} = py_event_loop_pool:run(?F, total, [[A, B], #{x => C}]),
    {ok, 3} = py_event_loop_pool:run(?F, total, [[{A}, [[B]]], #{}]),
    {ok, 3} = py_event_loop_pool:run(?F, total, [[], #{deep => C}]),
    ok.

-spec create_task_with_handle_result() -> [{doc, string()}].
create_task_with_handle_result() -> [{doc, "create_task/5 of the pool takes result => handle, and a coroutine's result can be a handle."}].
-spec create_task_with_handle_result(ct_suite:ct_config()) -> term().
create_task_with_handle_result(_) ->
    Ref = py_event_loop_pool:create_task(asyncio, sleep, [0.01, <<"x">>], #{}, #{result => handle}),
    {ok, H} = py_event_loop_pool:await(Ref),
    {ok, #{type := <<"str">>}} = py_obj:info(H),
    {ok, <<"x">>} = py_obj:value(H),
    ok.

%% Internal.

-spec handles(pos_integer()) -> non_neg_integer().
handles(Loop) ->
    #{handles := N} = pyport_ct:loop_stats(Loop),
    N.

-spec type_of(py_obj:obj()) -> {ok, binary()} | term().
type_of(H) ->
    case py_obj:info(H) of
        {ok, #{type := T}} -> {ok, T};
        Other -> Other
    end.

%% Runs Fun in a fresh process (not the owner of anything).
-spec rpc_in(fun(() -> term())) -> term().
rpc_in(Fun) ->
    Self = self(),
    Ref = make_ref(),
    spawn(fun() -> Self ! {Ref, Fun()} end),
    receive {Ref, R} -> R after 5000 -> error(timeout) end.

%% The external format of a reference made on node 'other@nohost'.
-spec remote_ref() -> binary().
remote_ref() ->
    Node = <<"other@nohost">>,
    <<131, 90, 0, 3, 119, (byte_size(Node)), Node/binary, 0:32, 1:32, 2:32, 3:32>>.
