-module(pyport_app).
-behaviour(application).

%% application.
-export([start/2]).
-export([stop/1]).

%% application.

%% A misspelt key is reported once, here; a bad pool size is refused here,
%% where it can still be an ordinary {error, Reason} from
%% application:start/1.
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    ok = pyport_config:warn_unknown_keys(),
    case pyport_config:pool_size() of
        {ok, NumLoops} ->
            %% Both outlive worker restarts: the atoms a loop created are
            %% never collected, and a port that crashes in a loop must
            %% not get a fresh budget each time.
            ok = pyport_atoms:init(NumLoops),
            case pyport_tmpdir:create() of
                {ok, _} -> started(pyport_sup:start_link(NumLoops));
                {error, Reason} -> {error, {private_directory, Reason}}
            end;
        {error, _} = Error ->
            Error
    end.

%% stop/1 is not called when the start fails: clean up here then.
started({ok, _} = Started) ->
    Started;
started(Failed) ->
    ok = stop(undefined),
    Failed.

%% Runs once the supervision tree is gone (every port stopped).
-spec stop(term()) -> ok.
stop(_State) ->
    ok = pyport_tmpdir:remove(),
    pyport_atoms:clear().
