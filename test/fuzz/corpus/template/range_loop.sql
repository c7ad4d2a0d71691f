{% for i in range(3, 10, 2) %}{{ i }}{% endfor %}{{ range(5) | list | sum }}
