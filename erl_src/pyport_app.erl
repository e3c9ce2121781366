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
        {ok, NumLoops} -> pyport_sup:start_link(NumLoops);
        {error, _} = Error -> Error
    end.

-spec stop(term()) -> ok.
stop(_State) ->
    ok.
