@smoke
Feature: Original callers keep working
  Callers written for the first release ask with the original request form and read the point
  forecasts under "result". They must keep working unchanged.

  Background:
    Given the forecasting service is deployed

  Scenario: An original caller still gets its point forecasts under "result"
    When an original caller asks for 3 periods the original way
    Then the service accepts it
    And the answer lists 3 point forecasts under "result"
    And they are the forecasts the detailed answer gives period by period
