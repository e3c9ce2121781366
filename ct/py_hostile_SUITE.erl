%% The port is untrusted (docs/robustness.md, "The port is untrusted"):
%% task code that forges packets, floods the node with atoms, raises what
%% is not an Exception, exits, forks, spins or hoards memory. For each:
%% the node stays up, every caller is answered within its timeout, and
%% only the misbehaving task pays unless the OS process is really gone.
%% Fixtures: ct/python/pyport_hostile.py.
-module(py_hostile_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(X, pyport_hostile).
-define(NUM_LOOPS, 2).
%% Liveness bound only, never a speed assertion.
-define(PROMPTLY, 10000).

-spec all() -> [atom()].
all() ->
    [].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    pyport_ct:stop().

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(Case, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS} | case_env(Case)]),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    ok = pyport_ct:release_logs(),
    pyport_ct:stop().

%% Per-case application environment.
-spec case_env(atom()) -> [{atom(), term()}].
case_env(_) -> [].

%% Helpers.

%% Starts a bystander on loop 1: a task that naps Seconds and answers ok.
-spec bystander(number()) -> reference().
bystander(Seconds) ->
    py_event_loop:create_task({pyport_loop, 1}, ?X, nap, [Seconds, ok], #{}).

%% The bystander's answer: ok when the loop survived.
-spec bystander_result(reference()) -> term().
bystander_result(Ref) ->
    py_event_loop:await(Ref, ?PROMPTLY).

%% Runs a fixture on loop 1 with a timeout.
-spec run(atom(), list(), timeout()) -> term().
run(F, A, Timeout) ->
    py_event_loop:run({pyport_loop, 1}, ?X, F, A, #{timeout => Timeout}).
