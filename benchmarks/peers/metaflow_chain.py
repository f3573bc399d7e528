"""A chain of trivial Metaflow steps (start, N-2 middle steps, end); run with `python metaflow_chain.py run`."""

from metaflow import FlowSpec, step


class Chain(FlowSpec):
    @step
    def start(self):
        self.text = ""
        self.next(self.s1)

    @step
    def s1(self):
        self.text += "."
        self.next(self.s2)

    @step
    def s2(self):
        self.text += "."
        self.next(self.s3)

    @step
    def s3(self):
        self.text += "."
        self.next(self.s4)

    @step
    def s4(self):
        self.text += "."
        self.next(self.s5)

    @step
    def s5(self):
        self.text += "."
        self.next(self.s6)

    @step
    def s6(self):
        self.text += "."
        self.next(self.s7)

    @step
    def s7(self):
        self.text += "."
        self.next(self.s8)

    @step
    def s8(self):
        self.text += "."
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Chain()
