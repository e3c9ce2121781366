%% erlang_python's run-time controls of the interpreter, on pyport's loops
%% (docs/porting.md): memory statistics and garbage collection, the Python
%% log level, and the virtualenv.
%%
%% A setting that must outlive a port restart (log level, venv) is a
%% setting of the application environment, as if configured, which every
%% fresh port reads; the log level is applied to the live loops at once,
%% the venv by restarting each loop of the default pool (a port cannot
%% drop the packages it has imported). A venv that fails to start is
%% undone: the previous setting comes back and the loops restart with it.
-module(py_runtime).

%% API.
-export([memory_stats/0]).
-export([gc/1]).
-export([trace_memory/1]).
-export([version/0]).
-export([configure_logging/1]).
-export([activate_venv/1]).
-export([deactivate_venv/0]).
-export([venv_info/0]).
-export([ensure_venv/3]).

%% Internal exports, for py.
-export([started/1]).

-type log_level() :: debug | info | warning | error | critical.
-export_type([log_level/0]).

-define(APP, pyport).
-define(TIMEOUT, 30000).
-define(NOT_STARTED, {loop_unavailable, pyport_not_started}).

%% API.

-spec memory_stats() -> {ok, map()} | {error, term()}.
memory_stats() ->
    case py_event_loop_pool:run('erlang._compat', memory_stats, [], #{timeout => ?TIMEOUT}) of
        {ok, Stats} -> {ok, maps:fold(fun(K, V, Acc) -> Acc#{stat_key(K) => V} end,
                                      #{}, Stats)};
        Error -> started(Error)
    end.

-spec gc(0..2) -> {ok, non_neg_integer()} | {error, term()}.
gc(Generation) ->
    on_every_loop(collect_garbage, [Generation],
                  fun(Counts) -> {ok, lists:sum(Counts)} end).

%% tracemalloc.start(Frames) on every loop, or stop for 0.
-spec trace_memory(non_neg_integer()) -> ok | {error, term()}.
trace_memory(Frames) ->
    on_every_loop(trace_memory, [Frames], fun(_) -> ok end).

%% sys.version of the caller's loop.
-spec version() -> {ok, binary()} | {error, term()}.
version() ->
    started(py_event_loop_pool:eval(<<"__import__('sys').version">>, #{timeout => ?TIMEOUT})).

-spec configure_logging(map()) -> ok | {error, term()}.
configure_logging(Opts) when is_map(Opts) ->
    case maps:keys(maps:remove(level, Opts)) of
        [] -> ok;
        Unknown -> error({badarg, {configure_logging, Unknown,
                                   "only `level`: the OTP logger formats Python's records"}})
    end,
    Level = maps:get(level, Opts, debug),
    Number = case Level of
                 debug -> 10;
                 info -> 20;
                 warning -> 30;
                 error -> 40;
                 critical -> 50;
                 _ -> error({badarg, {level, Level}})
             end,
    %% Ports that start later (restarts) read it from here.
    ok = application:set_env(?APP, python_log_level, Level),
    on_every_loop(set_log_level, [Number], fun(_) -> ok end).

-spec activate_venv(file:filename_all()) -> ok | {error, term()}.
activate_venv(Path) ->
    Dir = unicode:characters_to_binary(Path),
    %% Checked by a live port first: a venv made for another Python X.Y
    %% would leave every restarted loop stopped.
    case py_event_loop_pool:run('erlang._env', venv_site_packages, [Dir],
                                #{timeout => ?TIMEOUT}) of
        {ok, _SitePackages} -> set_venv(Dir);
        {error, {python, <<"ValueError">>, Message, _}} -> {error, {bad_venv, Dir, Message}};
        Error -> started(Error)
    end.

-spec deactivate_venv() -> ok | {error, term()}.
deactivate_venv() ->
    set_venv(undefined).

-spec venv_info() -> {ok, map()}.
venv_info() ->
    case application:get_env(?APP, venv) of
        {ok, #{path := Path}} -> {ok, #{active => true, venv_path => Path}};
        {ok, Path} when Path =/= undefined -> {ok, #{active => true, venv_path => Path}};
        _ -> {ok, #{active => false}}
    end.

%% erlang_python's options: `force` (make it anew) and `{python, _}` /
%% `{installer, _}` / `{extras, _}`, which a port cannot honour (its venv
%% must be for the port's own Python, filled with its pip).
-spec ensure_venv(file:filename_all(), file:filename_all(), list()) -> ok | {error, term()}.
ensure_venv(Path, RequirementsFile, Opts) ->
    case [O || O <- Opts, O =/= force] of
        [] -> ok;
        Other -> error({badarg, {ensure_venv, Other,
                                 "a port's venv is made with the port's own Python and pip"}})
    end,
    Dir = unicode:characters_to_list(Path),
    _ = lists:member(force, Opts) andalso file:del_dir_r(Dir),
    set_venv(#{path => Dir, requirements_file => RequirementsFile}).

%% Internal.

set_venv(Venv) ->
    case pyport_registry:num_loops() of
        undefined ->
            {error, ?NOT_STARTED};
        N ->
            Old = application:get_env(?APP, venv, undefined),
            ok = put_venv(Venv),
            case restart_all(N) of
                ok ->
                    ok;
                {error, Reason} ->
                    ok = put_venv(Old),
                    _ = restart_all(N),
                    {error, Reason}
            end
    end.

put_venv(undefined) -> application:unset_env(?APP, venv);
put_venv(Venv) -> application:set_env(?APP, venv, Venv).

restart_all(N) ->
    Failed = [{I, R} || I <- lists:seq(1, N),
                        {error, R} <- [py_event_loop_pool:restart_loop({pyport_loop, I})]],
    case Failed of
        [] -> ok;
        [{_, Reason} | _] -> {error, Reason}
    end.

on_every_loop(Func, Args, Done) ->
    case pyport_registry:num_loops() of
        undefined ->
            {error, ?NOT_STARTED};
        N ->
            Refs = [py_event_loop:create_task({pyport_loop, I}, 'erlang._compat', Func, Args, #{})
                    || I <- lists:seq(1, N)],
            Results = [py_event_loop:await(Ref, ?TIMEOUT) || Ref <- Refs],
            case [R || {error, R} <- Results] of
                [] -> Done([V || {ok, V} <- Results]);
                [Reason | _] -> {error, Reason}
            end
    end.

stat_key(<<"gc_stats">>) -> gc_stats;
stat_key(<<"gc_count">>) -> gc_count;
stat_key(<<"gc_threshold">>) -> gc_threshold;
stat_key(<<"traced_memory_current">>) -> traced_memory_current;
stat_key(<<"traced_memory_peak">>) -> traced_memory_peak;
stat_key(Other) -> Other.

%% loop_unavailable because the application is not running says so.
-spec started(Result) -> Result | {error, {loop_unavailable, pyport_not_started}}
    when Result :: term().
started({error, loop_unavailable}) ->
    case pyport_registry:num_loops() of
        undefined -> {error, ?NOT_STARTED};
        _ -> {error, loop_unavailable}
    end;
started(Other) ->
    Other.
