%% Where the port executable `priv/pyport` is: the `executable` setting,
%% or the one beside this application's beams. A module of its own so
%% that what runs the executable (the ports, a venv's creation) need not
%% depend on the whole configuration.
-module(pyport_executable).

%% API.
-export([path/0]).

-define(APP, pyport).

%% API.

-spec path() -> file:filename().
path() ->
    case application:get_env(?APP, executable) of
        {ok, Exe} -> Exe;
        undefined -> default()
    end.

%% Internal.

default() ->
    case code:priv_dir(?APP) of
        {error, bad_name} ->
            %% Not loaded as an application (e.g. an escript): the beams'
            %% directory still sits beside priv.
            Ebin = filename:dirname(code:which(?MODULE)),
            filename:join([Ebin, "..", "priv", "pyport"]);
        Priv ->
            filename:join(Priv, "pyport")
    end.
