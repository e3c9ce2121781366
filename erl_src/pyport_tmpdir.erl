%% The node's private directory for the ports' start-up stderr files.
%%
%% A predictable name in a shared /tmp lets another user plant a symlink
%% there, which the port would follow and truncate. So the files live in
%% one directory per application start with a random name, created (an
%% existing one is refused: make_dir fails on it) and then restricted to
%% mode 0700 before any file is put in it; nobody else can create a
%% symlink in it. It is removed, with what is left in it, when the
%% application stops.
-module(pyport_tmpdir).

%% API.
-export([create/0]).
-export([remove/0]).
-export([dir/0]).
-export([file/1]).

-define(KEY, {?MODULE, dir}).
-define(ATTEMPTS, 10).

%% API.

%% Makes the directory under $TMPDIR (or /tmp) and remembers it.
-spec create() -> {ok, file:filename()} | {error, term()}.
create() ->
    create(base(), ?ATTEMPTS).

%% Removes the directory and its files (application stop).
-spec remove() -> ok.
remove() ->
    case persistent_term:get(?KEY, undefined) of
        undefined ->
            ok;
        Dir ->
            _ = persistent_term:erase(?KEY),
            _ = file:del_dir_r(Dir),
            ok
    end.

-spec dir() -> {ok, file:filename()} | error.
dir() ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> error;
        Dir -> {ok, Dir}
    end.

%% A fresh file name in the directory for loop Index (the directory is
%% made now if the application did not make it, e.g. a worker started on
%% its own in a test).
-spec file(pyport_task:loop_index()) -> {ok, file:filename()} | {error, term()}.
file(Index) ->
    Dir = case dir() of
              {ok, D} -> {ok, D};
              error -> create()
          end,
    case Dir of
        {ok, Path} ->
            Name = io_lib:format("loop-~s-~b.stderr",
                                 [file_tag(Index), erlang:unique_integer([positive])]),
            {ok, filename:join(Path, lists:flatten(Name))};
        {error, _} = Error ->
            Error
    end.

%% Internal.

base() ->
    case os:getenv("TMPDIR") of
        false -> "/tmp";
        "" -> "/tmp";
        D -> D
    end.

create(_Base, 0) ->
    {error, no_private_directory};
create(Base, Attempts) ->
    %% Unpredictable enough to avoid collisions; safety comes from
    %% make_dir refusing an existing path and the mode, not the name.
    Random = string:lowercase(binary_to_list(binary:encode_hex(rand:bytes(12)))),
    Dir = filename:join(Base, "pyport-" ++ Random),
    case file:make_dir(Dir) of
        ok ->
            case file:change_mode(Dir, 8#700) of
                ok ->
                    persistent_term:put(?KEY, Dir),
                    {ok, Dir};
                {error, _} = Error ->
                    _ = file:del_dir(Dir),
                    Error
            end;
        {error, eexist} ->
            create(Base, Attempts - 1);
        {error, _} = Error ->
            Error
    end.

%% A named pool's name may hold any character: the file name gets its hash.
file_tag(Index) when is_integer(Index) -> integer_to_list(Index);
file_tag({Pool, Index}) ->
    io_lib:format("~b-~b", [erlang:phash2(Pool), Index]).
