{# every value kind and operator, rendered the way Python prints them #}
none={{ none }} None={{ None }} true={{ true }} False={{ False }}
ints={{ 1 + 2 }} {{ 7 - 10 }} {{ 6 * 7 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }}
floats={{ 1 / 2 }} {{ 4 / 2 }} {{ 0.1 + 0.2 }} {{ 1.5e3 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.0001 }} {{ -0.0 }} {{ 2.5 * 2 }}
bools={{ true + 1 }} {{ 1 == 1.0 }} {{ 1 == true }} {{ 'a' == 'a' }} {{ 'a' != 'b' }} {{ [1, 2] == [1, 2] }}
order={{ 1 < 2 }} {{ 2 <= 1 }} {{ 'abc' < 'abd' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1, 2] < [1, 3] }}
in={{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1, 2] }} {{ '' in 'x' }}
logic={{ 1 and 'x' }} {{ 0 and 'x' }} {{ 0 or [] }} {{ none or 'dflt' }} {{ not 0 }} {{ not not 'a' }}
concat={{ 'a' ~ 1 ~ none ~ true ~ 1.5 }} {{ 'ab' + 'cd' }} {{ [1] + [2, 3] }}
strings={{ 'it\'s' }} {{ "say \"hi\"" }} {{ 'tab\there' }} {{ 'a' 'b' "c" }} {{ '\x41\u00e9\101' }} {{ 'keep \d' }}
list={{ [1, 'two', none, 3.0, true, ['n']] }} {{ [] }} {{ ['it\'s', "q\"", 'both\'"', 'nl\n'] }}
dict={{ {'a': 1, 'b': [1, 2], 'c': {'d': none}} }} {{ {} }} {{ {'x': 1, 'x': 2} }}
access={{ {'a': {'b': [10, 20, 30]}}.a.b[1] }} {{ [1, 2, 3][-1] }} {{ {'k': 'v'}['k'] }} {{ [[1, 2]].0.1 }}
target={{ target.name }} {{ target['schema'] }} {{ target }}
cond={{ 'yes' if 1 > 0 else 'no' }} {{ 'yes' if [] else 'no' }} {{ 'a' if false else 'b' if true else 'c' }}
neg={{ -5 }} {{ - -5 }} {{ +3 }} {{ -(2 + 3) }} {{ -2 ** 2 }} {{ (1 + 2) * 3 }} {{ 10 - 2 - 3 }}
numbers={{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 00 }} {{ 1_0.5 }} {{ 2E2 }}
tests={{ none is none }} {{ 1 is number }} {{ 'x' is string }} {{ undefined_name is defined }} {{ target is mapping }} {{ 1 is not none }}
{{ target.missing is undefined }} {{ true is boolean }} {{ 1 is integer }} {{ 1.0 is float }} {{ 1.0 is integer }}
repeat={{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [0] * 2 }} {{ 'x' * -1 }} {{ 'y' * true }} floatdiv={{ 7 // 0.1 }} {{ 7 % -0.5 }} {{ -7.5 // 2 }} {{ 7.5 % 2 }}
more tests={{ true is true }} {{ 1 is true }} {{ false is false }} {{ (1 if false) }}|{{ '' if false }}|
