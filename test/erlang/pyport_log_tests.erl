-module(pyport_log_tests).

-include_lib("eunit/include/eunit.hrl").

%% The logger handler the bounded-lines test installs.
-export([log/2]).

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec bounded_caps_any_term_test() -> term().
bounded_caps_any_term_test() ->
    Huge = [binary:copy(<<"x">>, 1 bsl 20), lists:seq(1, 100000),
            list_to_tuple(lists:seq(1, 10000))],
    Text = pyport_log:bounded(Huge),
    ?assert(byte_size(Text) =< 400),
    ?assertEqual(<<"{ok,1}">>, pyport_log:bounded({ok, 1})).

-spec bounded_copes_with_deep_and_unicode_terms_test() -> term().
bounded_copes_with_deep_and_unicode_terms_test() ->
    Deep = lists:foldl(fun(_, Acc) -> [Acc] end, x, lists:seq(1, 100000)),
    ?assert(byte_size(pyport_log:bounded(Deep)) =< 400),
    Uni = pyport_log:bounded(unicode:characters_to_binary(lists:duplicate(1000, 16#e9))),
    ?assert(byte_size(Uni) =< 400),
    ?assert(is_binary(unicode:characters_to_binary(Uni))).

-spec truncate_keeps_short_text_and_cuts_on_characters_test() -> term().
truncate_keeps_short_text_and_cuts_on_characters_test() ->
    ?assertEqual(<<"abc">>, pyport_log:truncate(<<"abc">>, 3)),
    ?assertEqual(<<"ab... (1 more bytes)">>, pyport_log:truncate(<<"abc">>, 2)),
    %% "é" is two bytes: a cut between them drops the half character.
    Cut = pyport_log:truncate(<<"a", 16#c3, 16#a9, "b">>, 2),
    ?assertEqual(<<"a... (3 more bytes)">>, Cut).

-spec record_and_output_lines_are_bounded_test() -> term().
record_and_output_lines_are_bounded_test() ->
    Self = self(),
    Id = pyport_log_tests_handler,
    ok = logger:add_handler(Id, ?MODULE, #{level => all, config => #{pid => Self}}),
    %% The default handler would print the megabytes this test logs.
    {ok, #{level := DefaultLevel}} = logger:get_handler_config(default),
    ok = logger:update_handler_config(default, level, none),
    try
        Big = binary:copy(<<"y">>, 10 bsl 20),
        ok = pyport_log:record(warning, <<"root">>, Big, 1),
        ok = pyport_log:output(stderr, Big, 1, logger),
        ok = pyport_log:protocol_fault({unexpected, {hello, Big}}, 1),
        Sizes = [iolist_size(io_lib:format(F, A))
                 || _ <- [1, 2, 3],
                    #{msg := {F, A}} <- [receive {log, E} -> E after 5000 -> none end]],
        ?assertEqual(3, length(Sizes)),
        [?assert(S =< 70000) || S <- Sizes],
        ?assert(lists:last(Sizes) =< 500)
    after
        ok = logger:update_handler_config(default, level, DefaultLevel),
        logger:remove_handler(Id)
    end.

%% logger handler.

-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {log, Event},
    ok.
