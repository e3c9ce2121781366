%% pyport_callback_runs: the per-loop bound on running callbacks and the
%% tracking that lets Python's call_cancel reach a run.
-module(pyport_callback_runs_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec limit_refuses_without_starting_test() -> term().
limit_refuses_without_starting_test() ->
    Runs = pyport_callback_runs:new(2),
    Self = self(),
    Start = fun() -> spawn(fun() -> receive stop -> ok end end) end,
    ?assertEqual(ok, pyport_callback_runs:start(Runs, 1, Start)),
    ?assertEqual(ok, pyport_callback_runs:start(Runs, 2, Start)),
    Refused = fun() -> Self ! started, self() end,
    ?assertEqual({error, {callback_limit, 2}}, pyport_callback_runs:start(Runs, 3, Refused)),
    receive started -> ?assert(false) after 0 -> ok end.

-spec duplicate_call_id_is_refused_test() -> term().
duplicate_call_id_is_refused_test() ->
    Runs = pyport_callback_runs:new(10),
    ?assertEqual(ok, pyport_callback_runs:start(Runs, 7, fun() -> self() end)),
    ?assertEqual({error, {duplicate_call_id, 7}},
                 pyport_callback_runs:start(Runs, 7, fun() -> self() end)).

-spec done_frees_a_slot_test() -> term().
done_frees_a_slot_test() ->
    Runs = pyport_callback_runs:new(1),
    Self = self(),
    %% The run ends before start/3 has recorded its pid: its slot is
    %% freed all the same.
    Start = fun() ->
                    Pid = spawn(fun() -> pyport_callback_runs:done(Runs, 1), Self ! {done, self()} end),
                    receive {done, Pid} -> Pid end
            end,
    ?assertEqual(ok, pyport_callback_runs:start(Runs, 1, Start)),
    ?assertEqual(ok, pyport_callback_runs:start(Runs, 2, fun() -> self() end)),
    %% Another process's done/2 for CallId 2 does not free the slot.
    Other = spawn(fun() -> pyport_callback_runs:done(Runs, 2), Self ! other_done end),
    receive other_done -> ok end,
    ?assert(is_pid(Other)),
    ?assertEqual({error, {callback_limit, 1}},
                 pyport_callback_runs:start(Runs, 3, fun() -> self() end)),
    ok = pyport_callback_runs:done(Runs, 2),
    ?assertEqual(ok, pyport_callback_runs:start(Runs, 3, fun() -> self() end)).

-spec cancel_reaches_the_run_test() -> term().
cancel_reaches_the_run_test() ->
    Runs = pyport_callback_runs:new(10),
    Self = self(),
    Start = fun() -> spawn(fun() -> receive M -> Self ! {got, M} end end) end,
    ?assertEqual(ok, pyport_callback_runs:start(Runs, 5, Start)),
    ok = pyport_callback_runs:cancel(Runs, 5),
    ok = pyport_callback_runs:cancel(Runs, 404),
    receive {got, M} -> ?assertEqual({pyport_callback_runs, cancel}, M)
    after 5000 -> ?assert(false)
    end.
