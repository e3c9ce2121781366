%% A virtualenv pyport makes and fills itself: `venv => #{path => P,
%% requirements => [...], requirements_file => F, index_url => U,
%% pip_args => [...], timeout_ms => Ms}` (docs/operations.md). Before the
%% loop's port starts, the venv is created if P has no pyvenv.cfg (with
%% the interpreter pyport runs: `pyport run -m venv --without-pip P`), and
%% the requirements are installed into it with that interpreter's pip
%% (`pip install --prefix P`), against the configured index. A stamp file
%% in P records what was installed, so later starts (other loops, port
%% restarts) do nothing until the requirements change. pip's output is
%% logged line by line as progress. One loop at a time per path (a
%% node-local lock); a plain path (not a map) is used as it is.
-module(pyport_venv).

%% API.
-export([ensure/2]).
-export([is_spec/1]).

-type spec() :: #{path := file:filename_all(),
                  requirements => [unicode:chardata()],
                  requirements_file => file:filename_all(),
                  index_url => unicode:chardata(),
                  pip_args => [unicode:chardata()],
                  timeout_ms => pos_integer()}.
-export_type([spec/0]).

-define(STAMP, ".pyport-requirements").
-define(DEFAULT_TIMEOUT_MS, 600000).
%% The longest pip output line logged.
-define(MAX_LINE, 1024).
%% `pyport run -c` code that makes the process the leader of a new session
%% (so of a process group named by its pid) and runs the module named by
%% its first argument as `-m` would.
-define(GROUP_PRELUDE,
        "import os, runpy, sys\n"
        "try:\n"
        "    os.setsid()\n"
        "except OSError:\n"
        "    pass\n"
        "module = sys.argv.pop(1)\n"
        "runpy.run_module(module, run_name='__main__', alter_sys=True)\n").

%% API.

-spec is_spec(term()) -> boolean().
is_spec(#{path := Path} = Spec) ->
    Checks = #{path => fun is_text/1,
               requirements => fun(L) -> is_list(L) andalso lists:all(fun is_text/1, L) end,
               requirements_file => fun is_text/1,
               index_url => fun is_text/1,
               pip_args => fun(L) -> is_list(L) andalso lists:all(fun is_text/1, L) end,
               timeout_ms => fun(T) -> is_integer(T) andalso T > 0 end},
    is_text(Path) andalso
        maps:fold(fun(K, V, Ok) ->
                          Ok andalso case Checks of
                                         #{K := Check} -> Check(V);
                                         _ -> false
                                     end
                  end, true, Spec);
is_spec(_) ->
    false.

%% Config with its `venv` a plain path, the venv made and filled first if
%% it is a spec.
-spec ensure(pyport_task:loop_index(), map()) -> {ok, map()} | {error, term()}.
ensure(Index, #{venv := #{path := Path} = Spec} = Config) ->
    Dir = unicode:characters_to_list(Path),
    Lock = {{?MODULE, filename:absname(Dir)}, self()},
    case global:trans(Lock, fun() -> ensure_dir(Index, Dir, Spec, Config) end, [node()]) of
        ok -> {ok, Config#{venv := Dir}};
        {error, _} = Error -> Error
    end;
ensure(_Index, Config) ->
    {ok, Config}.

%% Internal.

ensure_dir(Index, Dir, Spec, Config) ->
    T0 = erlang:monotonic_time(millisecond),
    Exe = pyport_executable:path(),
    Env = maps:get(env, Config, []),
    Timeout = maps:get(timeout_ms, Spec, ?DEFAULT_TIMEOUT_MS),
    Created = not filelib:is_regular(filename:join(Dir, "pyvenv.cfg")),
    Made = case Created of
               true ->
                   progress(Index, Dir, "creating the virtualenv"),
                   run(Index, Dir, Exe, ["run", "-m", "venv", "--without-pip", Dir], Env, Timeout);
               false ->
                   ok
           end,
    case Made of
        ok ->
            case requirements(Spec) of
                {ok, Wanted} ->
                    Stamp = filename:join(Dir, ?STAMP),
                    case file:read_file(Stamp) of
                        {ok, Wanted} ->
                            ok;
                        _ ->
                            install(Index, Dir, Exe, Spec, Env, Timeout, Stamp, Wanted, T0,
                                    Created)
                    end;
                {error, _} = Error ->
                    Error
            end;
        {error, _} = Error ->
            Error
    end.

install(Index, Dir, Exe, Spec, Env, Timeout, Stamp, Wanted, T0, Created) ->
    Reqs = [unicode:characters_to_list(R) || R <- maps:get(requirements, Spec, [])],
    File = case Spec of
               #{requirements_file := F} -> ["-r", unicode:characters_to_list(F)];
               _ -> []
           end,
    Index1 = case Spec of
                 #{index_url := U} -> ["--index-url", unicode:characters_to_list(U)];
                 _ -> []
             end,
    Extra = [unicode:characters_to_list(A) || A <- maps:get(pip_args, Spec, [])],
    case Reqs ++ File of
        [] ->
            file:write_file(Stamp, Wanted);
        What ->
            progress(Index, Dir, "installing requirements"),
            Args = ["run", "-m", "pip", "install", "--prefix", Dir, "--no-input",
                    "--disable-pip-version-check", "--no-warn-script-location"]
                ++ Index1 ++ Extra ++ What,
            case run(Index, Dir, Exe, Args, Env, Timeout) of
                ok ->
                    Ms = erlang:monotonic_time(millisecond) - T0,
                    progress(Index, Dir, io_lib:format("ready in ~b ms", [Ms])),
                    ok = py_telemetry:execute([pyport, venv, ready], #{duration_ms => Ms},
                                              #{path => Dir, loop => Index,
                                                created => Created}),
                    file:write_file(Stamp, Wanted);
                {error, _} = Error ->
                    Error
            end
    end.

%% What the stamp records: the requirements, the file's contents, the index.
requirements(Spec) ->
    FileText = case Spec of
                   #{requirements_file := F} -> file:read_file(F);
                   _ -> {ok, <<>>}
               end,
    case FileText of
        {ok, Text} ->
            {ok, term_to_binary({maps:get(requirements, Spec, []), Text,
                                 maps:get(index_url, Spec, default),
                                 maps:get(pip_args, Spec, [])})};
        {error, Reason} ->
            {error, {requirements_file, maps:get(requirements_file, Spec), Reason}}
    end.

%% Runs `pyport run -m Module Args...` (Args: ["run", "-m", Module | _]),
%% logging each line it prints; ok on exit status 0. The command leads a
%% process group of its own (the prelude's setsid, before the module
%% runs), so that a timeout kills what it started too (pip's build
%% subprocesses), not pip alone.
run(Index, Dir, Exe, ["run", "-m", Module | Args], Env, Timeout) ->
    try open_port({spawn_executable, Exe},
                  [binary, exit_status, stderr_to_stdout, use_stdio, {line, ?MAX_LINE},
                   {args, ["run", "-c", ?GROUP_PRELUDE, Module | Args]}]
                  ++ [{env, Env} || Env =/= []]) of
        Port -> collect(Index, Dir, Port, pyport_calls:deadline(Timeout), [])
    catch
        error:Reason -> {error, {open_port, Reason, Exe}}
    end.

collect(Index, Dir, Port, Deadline, Tail) ->
    receive
        {Port, {data, {_, Line}}} ->
            progress(Index, Dir, Line),
            collect(Index, Dir, Port, Deadline, lists:sublist([Line | Tail], 20));
        {Port, {exit_status, 0}} ->
            ok;
        {Port, {exit_status, Status}} ->
            {error, {exit_status, Status, iolist_to_binary(lists:join("\n", lists:reverse(Tail)))}}
    after pyport_calls:after_ms(Deadline) ->
        OsPid = case erlang:port_info(Port, os_pid) of
                    {os_pid, P} -> P;
                    undefined -> undefined
                end,
        catch port_close(Port),
        %% The group, then the process itself (should its setsid have
        %% failed, it is not the group's leader).
        _ = is_integer(OsPid) andalso
            os:cmd("env kill -KILL -- -" ++ integer_to_list(OsPid) ++ " " ++
                   integer_to_list(OsPid) ++ " 2>/dev/null"),
        {error, timeout}
    end.

progress(Index, Dir, Text) ->
    logger:info("pyport venv ~ts (loop ~p): ~ts", [Dir, Index, Text],
                #{pyport_loop => Index, pyport_venv => Dir}).

is_text(T) when is_binary(T) -> true;
is_text(T) -> io_lib:char_list(T) andalso T =/= [].
