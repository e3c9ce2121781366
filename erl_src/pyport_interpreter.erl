%% The interpreter check (docs/operations.md). The port executable is
%% linked against one libpython; the loader may find another one first
%% (LD_LIBRARY_PATH, a copy elsewhere) or none at all:
%%
%% - none: the loader prints why and the port exits 127 before any of our
%%   code runs, so the start-up stderr file is empty; loader_message/3 runs
%%   the executable once more with its stderr captured to get that text
%%   into the start failure.
%% - another: `ready` says which library was mapped and whether it is the
%%   one built against (erlang._ops); check/3 refuses a different one
%%   unless the loop's `allow_other_python` is true, and logs at start
%%   which Python each loop runs.
-module(pyport_interpreter).

%% API.
-export([check/3]).
-export([loader_message/3]).

%% How long the diagnostic run may take, and how much of its output is kept.
-define(PROBE_MS, 5000).
-define(PROBE_MAX, 8192).

%% API.

-spec check(pyport_task:loop_index(), map(), map())
    -> ok | {error, {python_mismatch, map()}}.
check(Index, Info, Config) ->
    Loaded = text(maps:get(python_lib, Info, <<>>)),
    Built = text(maps:get(python_lib_built, Info, <<>>)),
    Version = text(maps:get(python, Info, <<>>)),
    case {maps:get(python_lib_same, Info, true), maps:get(allow_other_python, Config, false)} of
        {false, false} ->
            {error, {python_mismatch, #{loaded => Loaded, built => Built,
                                        python => Version}}};
        {Same, _} ->
            Level = case Same of
                        false -> warning;
                        _ -> info
                    end,
            logger:log(Level, "pyport loop ~p runs Python ~ts from ~ts (built against ~ts)",
                       [Index, Version, Loaded, Built],
                       #{pyport_loop => Index, pyport_python_lib => Loaded}),
            ok = py_telemetry:execute([pyport, loop, start], #{},
                                      #{loop => Index, python => Version,
                                        python_lib => Loaded, same => Same =/= false}),
            ok
    end.

%% A start that failed with exit status 127 and nothing in its stderr
%% file: the dynamic loader could not start the executable (a missing
%% libpython). The loader's text, captured by running the executable
%% again, becomes the reason's stderr.
-spec loader_message(term(), file:filename(), [{string(), string() | false}]) -> term().
loader_message({exit_status, 127, <<>>}, Exe, Env) ->
    {exit_status, 127, probe(Exe, Env)};
loader_message(Reason, _, _) ->
    Reason.

%% Internal.

probe(Exe, Env) ->
    try open_port({spawn_executable, Exe},
                  [binary, exit_status, stderr_to_stdout, use_stdio,
                   {args, ["run", "-c", "pass"]}] ++ [{env, Env} || Env =/= []]) of
        Port -> collect(Port, <<>>, pyport_calls:deadline(?PROBE_MS))
    catch
        error:Reason -> iolist_to_binary(io_lib:format("~tp", [Reason]))
    end.

collect(Port, Acc, Deadline) ->
    receive
        {Port, {data, Bin}} when byte_size(Acc) < ?PROBE_MAX ->
            collect(Port, <<Acc/binary, Bin/binary>>, Deadline);
        {Port, {data, _}} ->
            collect(Port, Acc, Deadline);
        {Port, {exit_status, _}} ->
            binary:part(Acc, 0, min(byte_size(Acc), ?PROBE_MAX))
    after pyport_calls:after_ms(Deadline) ->
        catch port_close(Port),
        Acc
    end.

text(B) when is_binary(B) -> B;
text(Other) -> pyport_log:bounded(Other).
