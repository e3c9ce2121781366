%% `make check-env` (docs/operations.md): for each distinct setup of the
%% configured application's loops (its sys.config, `CONFIG=...`), runs
%% `pyport run -m erlang._envcheck` with that loop's venv, python_path
%% and preload modules, and prints what it says. Also checks the
%% configuration itself (unknown keys, loops beyond the pool's size).
%% Exit status 1 when something is wrong.
-module(pyport_envcheck).

%% API.
-export([main/0]).
-export([check/0]).

%% API.

-spec main() -> no_return().
main() ->
    halt(case check() of ok -> 0; error -> 1 end).

%% Prints the checks; `error` if any failed.
-spec check() -> ok | error.
check() ->
    _ = application:load(pyport),
    Exe = pyport_config:executable(),
    io:format("pyport executable: ~ts~n", [Exe]),
    ConfigOk = case {pyport_config:unknown_keys(application:get_all_env(pyport)),
                     pyport_config:pool_size()} of
                   {[], {ok, _}} -> true;
                   {Unknown, Size} ->
                       io:format("PROBLEM configuration: unknown keys ~tp, pool size ~tp~n",
                                 [Unknown, Size]),
                       Unknown =:= [] andalso element(1, Size) =:= ok
               end,
    {ok, N} = case pyport_config:pool_size() of
                  {ok, _} = Ok -> Ok;
                  {error, _} -> {ok, 1}
              end,
    Setups = lists:usort([setup(I) || I <- lists:seq(1, N)]),
    Results = [run(Exe, Setup) || Setup <- Setups],
    case ConfigOk andalso lists:all(fun(R) -> R end, Results) of
        true -> ok;
        false -> error
    end.

%% Internal.

setup(I) ->
    case pyport_config:loop(I) of
        {ok, Config} -> {ok, Config};
        {error, Reason} -> {error, I, Reason}
    end.

run(_Exe, {error, I, Reason}) ->
    io:format("PROBLEM loop ~b configuration: ~tp~n", [I, Reason]),
    false;
run(Exe, {ok, #{python_path := Paths, preload := Preload, venv := Venv, env := Env}}) ->
    VenvArgs = case Venv of
                   undefined -> [];
                   #{path := P} -> ["--venv", text(P)];
                   P -> ["--venv", text(P)]
               end,
    Args = ["run", "-m", "erlang._envcheck"] ++ VenvArgs
        ++ lists:append([["--path", text(P)] || P <- Paths])
        ++ lists:append([["--import", text(M)] || M <- Preload]),
    try open_port({spawn_executable, Exe},
                  [binary, exit_status, stderr_to_stdout, use_stdio, {args, Args}]
                  ++ [{env, Env} || Env =/= []]) of
        Port -> print(Port)
    catch
        error:Reason ->
            io:format("PROBLEM cannot run ~ts: ~tp~n", [Exe, Reason]),
            false
    end.

print(Port) ->
    receive
        {Port, {data, Bin}} -> io:put_chars(Bin), print(Port);
        {Port, {exit_status, 0}} -> true;
        {Port, {exit_status, Status}} ->
            io:format("(exit status ~b)~n", [Status]),
            false
    after 60000 ->
        io:format("PROBLEM: no answer in 60 s~n"),
        false
    end.

text(A) when is_atom(A) -> atom_to_list(A);
text(B) when is_binary(B) -> unicode:characters_to_list(B);
text(L) -> L.
