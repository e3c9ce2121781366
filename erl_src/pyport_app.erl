-module(pyport_app).
-behaviour(application).

%% application.
-export([start/2]).
-export([stop/1]).

%% application.

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    pyport_sup:start_link().

-spec stop(term()) -> ok.
stop(_State) ->
    ok.
