{% raw %}{{ not rendered }}{% endraw %}
